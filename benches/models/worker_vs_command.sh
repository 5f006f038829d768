#!/bin/sh
# Benchmark (not a test): 1000 evaluations of a trivial Python model
# (examples/python/decay.py) run as a `command` model (one Python process per
# member), a `worker` model (long-lived Python workers, one JSON line per
# member) and a `batch` model (one Python process for all members), side by
# side in one run on this machine. Prints seconds and the ratios.
#
#   sh benches/models/worker_vs_command.sh [MEMBERS] [JOBS]
#
# MEMBERS defaults to 1000, JOBS (processes or workers at once) to the cores.
# EKP_CLI=path/to/ekp-cli uses that binary instead of building a release one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
members=${1:-1000}
jobs=${2:-$(nproc)}
if [ -n "${EKP_CLI:-}" ]; then
    ekp=$EKP_CLI
else
    cargo build --release -q -p ekp-cli --manifest-path "$repo/Cargo.toml"
    ekp="$repo/target/release/ekp-cli"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
for kind in command worker batch; do
    sed -e "s/ensemble_size = 10/ensemble_size = $members/" \
        -e "s|program = \"./decay_$kind.py\"|program = \"$repo/examples/python/decay_$kind.py\"|" \
        "$repo/examples/python/$kind.toml" > "$work/$kind.toml"
    "$ekp" init --config "$work/$kind.toml" --dir "$work/$kind" >/dev/null
done
for kind in command worker batch; do
    start=$(now)
    "$ekp" forward --dir "$work/$kind" --members "1-$members" --jobs "$jobs" >/dev/null
    end=$(now)
    eval "t_$kind=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
done
# Same outputs whichever way the members ran (as numbers: the command model
# writes its own output.toml, ekp writes the others').
python3 - "$work" "$members" <<'PY'
import pathlib, sys, tomllib
work, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
width = max(3, len(str(n)))
for j in range(1, n + 1):
    m = f"iteration_000/member_{j:0{width}d}/output.toml"
    values = [tomllib.loads((work / k / m).read_text())["values"] for k in ("command", "worker", "batch")]
    assert values[0] == values[1] == values[2], (m, values)
PY
printf '%s evaluations of a trivial Python model, %s processes/workers at once, on %s (%s cores)\n' \
    "$members" "$jobs" "$(uname -n)" "$(nproc)"
printf '  command (a process per member): %8.2f s\n' "$t_command"
printf '  worker  (%s long-lived workers): %8.2f s   %6.1fx faster than command\n' "$jobs" "$t_worker" "$(awk -v a="$t_command" -v b="$t_worker" 'BEGIN { print a / b }')"
printf '  batch   (one process):          %8.2f s   %6.1fx faster than command\n' "$t_batch" "$(awk -v a="$t_command" -v b="$t_batch" 'BEGIN { print a / b }')"
