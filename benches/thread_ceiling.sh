#!/usr/bin/env bash
# Thread scaling of the forward kernel against the machine's own ceiling
# (run by hand): each round times `ekp-cli bench` with 1 thread, with 2
# threads, and two independent 1-thread processes at the same time. If the
# pair of processes scales no better than the 2 threads, what limits the
# threads is the machine (shared cores, boost), not the kernel's joins.
#
#   cargo build --release -p ekp-cli
#   benches/thread_ceiling.sh [ROUNDS]     (env: CLI, MEMBERS, STEPS, PRECISION)
set -euo pipefail
cli=${CLI:-${CARGO_TARGET_DIR:-target}/release/ekp-cli}
members=${MEMBERS:-10000}
steps=${STEPS:-1000}
precision=${PRECISION:-f64}
rounds=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rate() { awk '/^member-steps\/s:/ {print $2}' "$1"; }
bench() { "$cli" bench --members "$members" --steps "$steps" --precision "$precision" "$@"; }
for ((r = 1; r <= rounds; r++)); do
    bench --backend threads --threads 1 >"$tmp/one"
    bench --backend threads --threads 2 >"$tmp/two"
    bench --backend serial >"$tmp/a" &
    bench --backend serial >"$tmp/b" &
    wait
    python3 - "$(rate "$tmp/one")" "$(rate "$tmp/two")" "$(rate "$tmp/a")" "$(rate "$tmp/b")" <<'PY'
import sys
one, two, a, b = map(float, sys.argv[1:])
print(f"1 thread {one:.3e}  2 threads {two:.3e} ({two / one:.2f}x)  "
      f"two 1-thread processes at once {a + b:.3e} ({(a + b) / one:.2f}x)  "
      f"2 threads / the pair {two / (a + b):.2f}")
PY
done
