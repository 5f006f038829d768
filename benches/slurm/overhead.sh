#!/usr/bin/env bash
# Per-iteration overhead of the two SLURM modes on the local cluster, for a
# trivial (built-in linear) model, so that what is timed is the machinery:
#
#   chain:  `ekp-cli slurm --submit --wait` — per iteration one array job (a
#           task per member, or per --members-per-task K) and one update job,
#           each waiting for the scheduler;
#   srun:   `salloc -N NODES ekp-cli run --launcher srun` — per iteration one
#           job step per member (or per K), the update in-process;
#   local:  `ekp-cli run` on this machine, for reference.
#
#   benches/slurm/overhead.sh [MEMBERS...]     (default: 8 256)
#
# Needs a running cluster (scripts/slurm-local.sh start --nodes 3; SLURM_CONF
# exported) and a built ekp-cli ($EKP_CLI, default target/release/ekp-cli).
# Env: ITERATIONS (default 3), K (members per task/step for the second row
# of each size, default 32), NODES (salloc -N, default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
exe=$(realpath "${EKP_CLI:-target/release/ekp-cli}")
iterations=${ITERATIONS:-3}
k=${K:-32}
nodes=${NODES:-3}
[ -n "${SLURM_CONF:-}" ] || { echo "overhead.sh: export SLURM_CONF (scripts/slurm-local.sh env)" >&2; exit 2; }
work=$(mktemp -d /tmp/ekp-overhead.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

config() {
    cat <<EOF
[process]
kind = "inversion"
ensemble_size = $1
iterations = $iterations
seed = 1
scheduler = { kind = "fixed", dt = 0.5 }
[[parameters]]
name = "a"
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }
[[parameters]]
name = "b"
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }
[observations]
values = [1.0, 2.0]
noise_std = 0.1
[model]
kind = "linear"
matrix = [[1.0, 0.0], [0.0, 1.0]]
EOF
}

# Seconds `$@` takes.
timed() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; return 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

# One row: mode, members, K, jobs or steps per iteration, seconds in all,
# seconds per iteration (the iterations plus the final evaluation).
row() {
    local mode=$1 n=$2 per=$3 units=$4 secs=$5
    printf '| %-6s | %5d | %3d | %-24s | %7.1f | %6.2f |\n' "$mode" "$n" "$per" "$units" "$secs" \
        "$(echo "$secs / ($iterations + 1)" | bc -l)"
}

echo "| mode   | members | K | per iteration | seconds | s/iteration |"
echo "|---|---|---|---|---|---|"
for n in "${@:-8 256}"; do
    for n1 in $n; do
        config "$n1" >"$work/cal_$n1.toml"
        for per in 1 "$k"; do
            [ "$per" -le "$n1" ] || continue
            tasks=$(((n1 + per - 1) / per))
            d=$work/chain_${n1}_$per
            s=$(timed "$exe" slurm --dir "$d" --config "$work/cal_$n1.toml" --members-per-task "$per" \
                --submit --wait --poll 0.2)
            row chain "$n1" "$per" "2 jobs ($tasks array tasks)" "$s"
            d=$work/srun_${n1}_$per
            s=$(timed salloc -N "$nodes" --time 30 "$exe" run -q --config "$work/cal_$n1.toml" \
                --output "$d" --launcher srun --members-per-task "$per")
            row srun "$n1" "$per" "$tasks job steps" "$s"
        done
        s=$(timed "$exe" run -q --config "$work/cal_$n1.toml" --output "$work/local_$n1")
        row local "$n1" 0 "in-process" "$s"
    done
done
