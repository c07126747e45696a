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
#
# WM=openbox (or another window manager's command) runs one on the virtual screen and grabs the whole screen, so
# that the window's frame and title bar show, and whatever of the window is off the screen is seen to be missing.
# STATES="maximized normal" (the default with WM) takes one screenshot in each window state, set through the
# window manager (wmctrl): OUTDIR/screenshot-1280x720-openbox-maximized.png, ...; needs wmctrl
# (apt-get install openbox wmctrl).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$HERE/docs/screenshots}"
shift || true
PY="${PYTHON:-$HERE/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
case "$DEST" in /*) ;; *) DEST="$PWD/$DEST" ;; esac
read -r -a SIZE_LIST <<< "${SIZES:-1600x1000 1280x720 1024x600}"
WM="${WM:-}"
if [ -n "$WM" ]; then
    read -r -a STATE_LIST <<< "${STATES:-maximized normal}"
    for tool in "${WM%% *}" wmctrl; do
        command -v "$tool" >/dev/null 2>&1 || { echo "screenshot.sh: $tool not found (apt-get install openbox wmctrl)" >&2; exit 2; }
    done
else
    STATE_LIST=(as-opened)
fi

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
# Under a window manager: start it, start the app, put its window in the state asked for, wait for the app.
cat > "$TMP/under-wm.sh" <<'INNER'
#!/usr/bin/env bash
state="$1"; shift
$WM >/dev/null 2>&1 &
wm=$!
for _ in $(seq 100); do wmctrl -m >/dev/null 2>&1 && break; sleep 0.1; done
"$@" &
app=$!
for _ in $(seq 300); do
    if wmctrl -l 2>/dev/null | grep -q Unsampler; then
        case "$state" in
            maximized) wmctrl -r Unsampler -b add,maximized_vert,maximized_horz ;;
            normal) wmctrl -r Unsampler -b remove,maximized_vert,maximized_horz ;;
        esac
        break
    fi
    sleep 0.1
done
status=0
wait "$app" || status=$?
kill "$wm" 2>/dev/null || true
exit "$status"
INNER
chmod +x "$TMP/under-wm.sh"
cd "$HERE"
status=0
for size in "${SIZE_LIST[@]}"; do
    for state in "${STATE_LIST[@]}"; do
        case "$DEST" in
            *.png) out="$DEST" ;;
            *) if [ -n "$WM" ]; then out="$DEST/screenshot-$size-${WM%% *}-$state.png"; else out="$DEST/screenshot-$size.png"; fi ;;
        esac
        rm -f "$out" "$TMP/settings.ini"
        if [ -n "$WM" ]; then
            run=("$TMP/under-wm.sh" "$state" "$PY" -m unsampler_gui --run --screenshot "$out" --screenshot-screen
                 --quit-after-run "$@")
        else
            run=("$PY" -m unsampler_gui --run --screenshot "$out" --quit-after-run "$@")
        fi
        WM="$WM" UNSAMPLER_SETTINGS="$TMP/settings.ini" QT_QPA_PLATFORM=xcb \
            timeout 600 xvfb-run -a -s "-screen 0 ${size}x24 -dpi 96" "${run[@]}" || true
        if [ -s "$out" ]; then
            echo "$out"
        else
            echo "screenshot.sh: no screenshot was written at $size ($state)" >&2
            status=1
        fi
    done
done
exit "$status"
