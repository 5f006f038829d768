#!/usr/bin/env bash
# Run the whole ekp test suite.
#
# The GPU tests need a Vulkan driver; on a machine without a GPU, Mesa's
# software Vulkan (lavapipe) serves. Run as root, this script installs it
# (Debian/Ubuntu: mesa-vulkan-drivers, libvulkan1); otherwise it says what is
# missing and the GPU tests report themselves skipped (unless
# EKP_REQUIRE_GPU=1, which makes a missing adapter a failure, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
# Mesa's Vulkan device-select layer complains on headless machines.
export NODEVICE_SELECT=1

# Vulkan (lavapipe, f64) for the GPU tests; EGL/GL (llvmpipe, f32 only) for
# the test that f64 is refused where the adapter lacks it; python3 for the
# worker, batch and command model tests (ekp-cli/tests/program_models.rs run
# the Python examples of examples/python).
packages=(mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri python3)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
fi
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${missing[*]} (software Vulkan for the GPU tests, python3)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "test.sh: NOTICE: ${missing[*]} not installed and not root: GPU tests will be skipped (and without python3 the program model tests fail)" >&2
    fi
fi

# The SLURM tests (ekp-cli/tests/slurm.rs, slurm_nodes.rs) run against a
# cluster of 3 nodes on localhost (EKP_SLURM_NODES): scripts/slurm-local.sh
# installs Debian's packages (as root) and starts it, and it is stopped at the
# end if it was started here. A cluster already running there is used as it
# is (slurm_nodes.rs then starts a 3-node one of its own beside it if it has
# fewer nodes). Without a cluster those tests report themselves skipped
# (unless EKP_REQUIRE_SLURM=1, as in CI).
slurm_started=0
slurm_start=(start --nodes "${EKP_SLURM_NODES:-3}")
if [ "$(id -u)" = 0 ]; then slurm_start+=(--install); fi
if scripts/slurm-local.sh status >/dev/null 2>&1; then
    :
elif scripts/slurm-local.sh "${slurm_start[@]}" >/dev/null; then
    slurm_started=1
else
    echo "test.sh: NOTICE: no local SLURM cluster (scripts/slurm-local.sh start failed): SLURM tests will be skipped" >&2
fi
if [ "$(scripts/slurm-local.sh nodes 2>/dev/null | wc -l)" -ge 3 ]; then
    # The multi-node tests use this cluster too.
    export EKP_SLURM_PREFIX=${EKP_SLURM_PREFIX:-/tmp/ekp-slurm}
fi

log=$(mktemp)
trap 'rm -f "$log"; if [ "$slurm_started" = 1 ]; then scripts/slurm-local.sh stop >/dev/null 2>&1 || true; fi' EXIT
# Doc tests are not part of --all-targets, hence two runs.
status=0
{ cargo test --workspace --all-targets --locked "$@" && cargo test --workspace --doc --locked; } 2>&1 \
    | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
