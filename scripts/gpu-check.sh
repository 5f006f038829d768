#!/usr/bin/env bash
# One command for a machine with a GPU: build (release), run the GPU tests
# (a missing adapter is a failure), then a forward table of the GPU kernel
# (f32 and f64; 10^4 and 10^6 members; steps doubled until a point takes at
# least MIN_SECONDS) and the kernel against a minimal hand-unrolled one, and
# print the card's name. Aimed at under 5 minutes including the build.
#
#   scripts/gpu-check.sh            # the full check
#   scripts/gpu-check.sh --small    # 10^3 and 10^4 members, 0.3 s a point:
#                                   # for a software adapter (lavapipe)
#
# Environment: CARGO_TARGET_DIR (default target), MIN_SECONDS (default 1.0;
# --small: 0.3), MEMBERS (space-separated list, overrides the sizes), and
# EKP_GPU_CHECK_SKIP_TESTS=1 to skip the tests (the table only).
# The figures go to stdout; a copy of the whole log to $CARGO_TARGET_DIR/gpu-check.log.
set -euo pipefail
cd "$(dirname "$0")/.."

small=0
for arg in "$@"; do
    case "$arg" in
        --small) small=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "gpu-check.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done
if ((small)); then
    members_list=${MEMBERS:-"1000 10000"}
    min_seconds=${MIN_SECONDS:-0.3}
    minimal_members=10000
    minimal_steps=1000
else
    members_list=${MEMBERS:-"10000 1000000"}
    min_seconds=${MIN_SECONDS:-1.0}
    minimal_members=1000000
    minimal_steps=3000
fi

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
log=$target/gpu-check.log
exec > >(tee "$log") 2>&1
# Mesa's Vulkan device-select layer complains on headless machines.
export NODEVICE_SELECT=1
start=$(date +%s)
say() { printf '== %s (%ds)\n' "$*" "$(($(date +%s) - start))"; }

say "card"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
elif command -v rocm-smi >/dev/null 2>&1; then
    rocm-smi --showproductname || true
else
    echo "no nvidia-smi / rocm-smi: the Vulkan adapter wgpu picks is printed below"
fi
if command -v vulkaninfo >/dev/null 2>&1; then
    vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName" || true
fi

say "build (release): ekp-cli, ekp-gpu tests and examples"
cargo build --release -p ekp-cli
cargo build --release -p ekp-gpu --tests --examples
cli="$target/release/ekp-cli"

if [ "${EKP_GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
    say "GPU tests (EKP_REQUIRE_GPU=1: no adapter is a failure)"
    EKP_REQUIRE_GPU=1 cargo test --release -p ekp-gpu
fi

# One table point: steps doubled (at least) until the bench's own elapsed
# time reaches min_seconds; prints "precision members steps rate adapter".
point() {
    local precision=$1 members=$2 steps=1000 out elapsed rate adapter factor
    while :; do
        out=$("$cli" bench --backend gpu --precision "$precision" --members "$members" --steps "$steps")
        elapsed=$(printf '%s\n' "$out" | sed -n 's/^elapsed: \([0-9.]*\) s.*/\1/p')
        rate=$(printf '%s\n' "$out" | sed -n 's/^member-steps\/s: //p')
        adapter=$(printf '%s\n' "$out" | sed -n 's/^adapter: //p')
        if [ -z "$elapsed" ] || [ -z "$rate" ]; then
            echo "unexpected bench output:" >&2
            printf '%s\n' "$out" >&2
            return 1
        fi
        if awk -v e="$elapsed" -v m="$min_seconds" 'BEGIN { exit !(e >= m) }'; then
            break
        fi
        # Aim at 1.3 × min_seconds from this run's time, at least doubling.
        factor=$(awk -v e="$elapsed" -v m="$min_seconds" \
            'BEGIN { f = (e > 0) ? 1.3 * m / e : 1000; if (f < 2) f = 2; if (f > 1000) f = 1000; printf "%d", f + 0.999 }')
        steps=$((steps * factor))
    done
    printf '%-9s %10s %10s %14s %10s   %s\n' "$precision" "$members" "$steps" "$rate" "$elapsed" "$adapter"
}

say "forward table: ekp-cli bench --backend gpu (36 sites, RK4), >= ${min_seconds} s a point"
printf '%-9s %10s %10s %14s %10s   %s\n' precision members steps member-steps/s seconds adapter
for precision in f32 f64; do
    for members in $members_list; do
        point "$precision" "$members" || echo "$precision $members: failed (f64 needs SHADER_F64)"
    done
done

say "kernel vs a minimal hand-unrolled kernel, same adapter ($minimal_members members, $minimal_steps steps)"
"$target/release/examples/minimal_kernel" "$minimal_members" "$minimal_steps"

say "done in $(($(date +%s) - start)) s; log in $log"
