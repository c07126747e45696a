#!/usr/bin/env bash
# Build the one-folder desktop app into dist/unsampler/ with PyInstaller, then smoke-test it offscreen.
#
#   bash packaging/build_dist.sh            (from anywhere; uses the repository's .venv)
#   PY=/path/to/python bash packaging/build_dist.sh
#
# The smoke test runs `dist/unsampler/unsampler --smoke-test` (build the main window, process events once,
# exit 0) with QT_QPA_PLATFORM=offscreen. If the app does not know --smoke-test yet (argparse exits 2), it
# falls back to `--version`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-120}"

if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "== installing pyinstaller into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install -q "pyinstaller>=6.10"
fi

echo "== building dist/unsampler with PyInstaller $("$PY" -m PyInstaller --version)"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" \
    "$ROOT/packaging/unsampler.spec"
end=$(date +%s)

case "$(uname -s)" in
    MINGW*|MSYS*|CYGWIN*) APP="$ROOT/dist/unsampler/unsampler.exe" ;;
    *) APP="$ROOT/dist/unsampler/unsampler" ;;
esac
test -x "$APP" || { echo "error: $APP was not built" >&2; exit 1; }
echo "== built $APP in $((end - start)) s; folder size $(du -sh "$ROOT/dist/unsampler" | cut -f1)"

run_app() {
    # Runs the built app offscreen with a time limit; prints its output; returns its exit status.
    local rc=0
    QT_QPA_PLATFORM=offscreen timeout "$SMOKE_TIMEOUT" "$APP" "$@" || rc=$?
    return $rc
}

echo "== smoke test: unsampler --smoke-test (offscreen)"
rc=0
run_app --smoke-test || rc=$?
if [ "$rc" -eq 2 ]; then
    echo "== --smoke-test is not known yet; falling back to: unsampler --version"
    rc=0
    run_app --version || rc=$?
fi
if [ "$rc" -eq 124 ]; then
    echo "error: the built app did not exit within ${SMOKE_TIMEOUT} s" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "error: the built app's smoke test failed (exit status $rc)" >&2
    exit "$rc"
fi
echo "== smoke test passed"
