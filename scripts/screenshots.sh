#!/usr/bin/env bash
# The pictures the README shows, made from a real run: the default Lorenz 96
# calibration is run, then headless Chromium renders its report.html and its
# corner plot (plots/pairs.svg) as a browser shows them; the parameters and
# misfit figures are ekp-cli's own PNG output.
#
#   scripts/screenshots.sh [OUT]      (default OUT: docs/)
#
# Needs chromium (Debian: apt-get install chromium). Writes OUT/report.png,
# OUT/corner.png, OUT/lorenz96-parameters.png and OUT/lorenz96-misfit.png.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "screenshots.sh: needs chromium (Debian: apt-get install chromium)" >&2
    exit 2
fi
cargo build -q -p ekp-cli
ekp=$PWD/target/debug/ekp-cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ekp" run -q --seed 42 --output "$work/run"

# Headless, offline, with a fresh profile: the flags keep Chromium from
# reaching for the network, which this machine does not have.
shot() { # URL FILE WIDTH HEIGHT
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$work/profile" \
        --window-size="$3,$4" --screenshot="$2" "$1" >/dev/null 2>&1
    test -s "$2"
}
mkdir -p "$out"
shot "file://$work/run/report.html" "$out/report.png" 1200 1500
# The corner plot at its own size (the SVG's width and height).
size=$(grep -o -m1 '<svg[^>]*' "$work/run/plots/pairs.svg")
width=$(sed -n 's/.*width="\([0-9]*\)".*/\1/p' <<<"$size")
height=$(sed -n 's/.*height="\([0-9]*\)".*/\1/p' <<<"$size")
shot "file://$work/run/plots/pairs.svg" "$out/corner.png" "${width:-800}" "${height:-860}"
cp "$work/run/plots/parameters.png" "$out/lorenz96-parameters.png"
cp "$work/run/plots/misfit.png" "$out/lorenz96-misfit.png"
echo "wrote $out/report.png $out/corner.png $out/lorenz96-parameters.png $out/lorenz96-misfit.png"
