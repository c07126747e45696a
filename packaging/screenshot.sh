#!/usr/bin/env bash
# Screenshot of the app after a run, under a virtual X server.
#
#   packaging/screenshot.sh [OUTPUT.png]        (default: docs/screenshot.png)
#
# Needs xvfb-run (Debian/Ubuntu: apt-get install xvfb libxcb-cursor0 libxkbcommon-x11-0).
# The app starts with --run on the bundled sample (SD15), waits for the run and the thumbnails,
# grabs its window into the PNG and quits. A throwaway settings file keeps your own settings out.
# Extra arguments after the output path go to the app; without any, a short run (40 steps, frame 25
# selected) shows the latent dissolving. Example: packaging/screenshot.sh out.png --steps 10000
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$HERE/docs/screenshot.png}"
shift || true
PY="${PYTHON:-$HERE/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
mkdir -p "$(dirname "$OUT")"

if ! command -v xvfb-run >/dev/null 2>&1; then
    echo "screenshot.sh: xvfb-run not found (apt-get install xvfb libxcb-cursor0 libxkbcommon-x11-0)" >&2
    exit 2
fi

if [ "$#" -eq 0 ]; then
    set -- --steps 40 --frame 25
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
rm -f "$OUT"
cd "$HERE"
UNSAMPLER_SETTINGS="$TMP/settings.ini" QT_QPA_PLATFORM=xcb \
    timeout 600 xvfb-run -a -s "-screen 0 1600x1000x24 -dpi 96" \
    "$PY" -m unsampler_gui --run --screenshot "$OUT" --quit-after-run "$@"
if [ ! -s "$OUT" ]; then
    echo "screenshot.sh: no screenshot was written" >&2
    exit 1
fi
echo "$OUT"
