#!/usr/bin/env bash
# Screenshots of the app after a run, under a virtual X server, at the screen sizes users have.
#
#   packaging/screenshot.sh [OUTDIR] [APP ARGS...]   (default: docs/screenshots/)
#       writes OUTDIR/screenshot-1600x1000.png, -1280x720.png and -1024x600.png
#   packaging/screenshot.sh OUTPUT.png [APP ARGS...]
#       one screenshot, at the first size (1600x1000)
#
# SIZES="1920x1080 1366x768" picks other screen sizes. Needs xvfb-run (Debian/Ubuntu:
# apt-get install xvfb libxcb-cursor0 libxkbcommon-x11-0). Each screenshot starts the app on a screen of
# that size with --run on the bundled sample (SD15), waits for the run and the thumbnails, grabs its
# window (fitted to the screen, as it opens there) into the PNG and quits. A throwaway settings file
# keeps your own settings out. Without APP ARGS a short run (40 steps, frame 25 selected) shows the
# latent dissolving. Example: packaging/screenshot.sh /tmp/shots --steps 10000
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$HERE/docs/screenshots}"
shift || true
PY="${PYTHON:-$HERE/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
case "$DEST" in /*) ;; *) DEST="$PWD/$DEST" ;; esac
read -r -a SIZE_LIST <<< "${SIZES:-1600x1000 1280x720 1024x600}"

if ! command -v xvfb-run >/dev/null 2>&1; then
    echo "screenshot.sh: xvfb-run not found (apt-get install xvfb libxcb-cursor0 libxkbcommon-x11-0)" >&2
    exit 2
fi
if [ "$#" -eq 0 ]; then
    set -- --steps 40 --frame 25
fi
case "$DEST" in
    *.png) SIZE_LIST=("${SIZE_LIST[0]}"); mkdir -p "$(dirname "$DEST")" ;;
    *) mkdir -p "$DEST" ;;
esac

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$HERE"
status=0
for size in "${SIZE_LIST[@]}"; do
    case "$DEST" in *.png) out="$DEST" ;; *) out="$DEST/screenshot-$size.png" ;; esac
    rm -f "$out" "$TMP/settings.ini"
    UNSAMPLER_SETTINGS="$TMP/settings.ini" QT_QPA_PLATFORM=xcb \
        timeout 600 xvfb-run -a -s "-screen 0 ${size}x24 -dpi 96" \
        "$PY" -m unsampler_gui --run --screenshot "$out" --quit-after-run "$@" || true
    if [ -s "$out" ]; then
        echo "$out"
    else
        echo "screenshot.sh: no screenshot was written at $size" >&2
        status=1
    fi
done
exit "$status"
