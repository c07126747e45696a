"""Live-sequence benchmarks (issue 14): the window follows the form with no Run, in bounded memory.

    python benchmarks/bench_sequence.py          (offscreen; `make bench` runs it too)

Each size runs in a fresh process started as ``unsampler-gui LATENT --model M --steps 10000`` would be:
- first visible thumbnails after a parameter change (the seed), SDXL size [1,4,128,128];
- a jump to a random frame until the viewer shows it (independent noise; trajectory after its keyframes);
- the longest GUI stall (a 5 ms probe timer) while typing into Steps (values typed into the focused field and
  ended by Enter, one every 120 ms), scrolling the grid end to end and playing;
- resident memory (VmRSS, and the peak VmHWM) with frames on the screen, SDXL and 720p Wan 2.1 [1,16,21,90,160].

Prints one table in the same format as benchmarks/run.py. The machine may be shared: the figures are what
this run got.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZES = {"sdxl": ("SDXL", (1, 4, 128, 128)), "wan720p": ("WAN21_T2V", (1, 16, 21, 90, 160))}


def _rss_mb() -> tuple:
    got = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line.split(":")[0]] = int(line.split()[1]) / 1024
    return got.get("VmRSS", float("nan")), got.get("VmHWM", float("nan"))


def child(kind: str) -> dict:
    import torch
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from unsampler_gui import core
    from unsampler_gui.qt.app import build_window, create_application, parse_args
    from unsampler_gui.qt.settings import Settings
    from unsampler_gui.qt.thumbnail_model import ReadyRole

    family, shape = SIZES[kind]
    tmp = tempfile.mkdtemp(prefix="bench-seq-")
    path = os.path.join(tmp, f"{kind}.latent")
    core.write_latent(path, torch.randn(*shape, generator=torch.Generator().manual_seed(0)))
    os.environ["UNSAMPLER_SETTINGS"] = os.path.join(tmp, "settings.ini")
    app = create_application([])
    if os.environ.get("SWI"):  # another switch interval than the app's, to see what the GIL costs the window
        sys.setswitchinterval(float(os.environ["SWI"]))
    win = build_window(parse_args([path, "--model", family, "--steps", "10000"]), Settings())
    win.resize(1500, 950)
    win.show()
    grid, viewer, model = win.grid, win.viewer, win.grid.thumbnail_model()
    limit = 600.0 if kind == "wan720p" else 60.0

    def pump_until(pred, timeout=limit) -> float:
        t = time.perf_counter()
        while not pred():
            QApplication.processEvents()
            if time.perf_counter() - t > timeout:
                raise TimeoutError(f"{kind}: not done within {timeout:.0f} s")
            time.sleep(0.001)
        return time.perf_counter() - t

    def current() -> bool:
        st = win.store
        return st.sequence is not None and st.sequence_inputs == win.session.inputs()

    def visible_ready() -> bool:
        rows = grid.visible_rows()
        return current() and len(rows) > 0 and all(model.index(r).data(ReadyRole) for r in rows)

    out = {"kind": kind, "load": os.getloadavg()[0]}
    out["open_s"] = pump_until(visible_ready)
    out["rss_stages"] = {"open": round(_rss_mb()[0])}
    # a parameter change: the visible thumbnails of the new sequence
    times = []
    for seed in range(1, 6 if kind == "sdxl" else 2):
        t = time.perf_counter()
        win.panel.set_params({"seed": seed}, family=False)
        grid.viewport().update()
        pump_until(visible_ready)
        times.append(time.perf_counter() - t)
    out["rss_stages"]["changes"] = round(_rss_mb()[0])
    out["change_ms"] = sorted(times)[len(times) // 2] * 1000
    out["change_all_ms"] = [round(x * 1000) for x in times]
    # jumps to random frames, until the viewer shows them
    rng = random.Random(1)

    def jump(frame: int) -> float:
        t = time.perf_counter()
        viewer.select_frame(frame)
        pump_until(lambda: viewer.shown is not None and viewer.shown == viewer.wanted)
        return (time.perf_counter() - t) * 1000

    jumps = [jump(rng.randrange(10000)) for _ in range(7 if kind == "sdxl" else 2)]
    out["jump_ms"] = sorted(jumps)[len(jumps) // 2]
    out["jump_max_ms"] = max(jumps)
    out["rss_stages"]["jumps"] = round(_rss_mb()[0])

    # the longest stall of the event loop while typing into Steps, scrolling and playing
    clock = QElapsedTimer()
    clock.start()
    gaps, last = [], [0]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    cpu = [0.0]
    probe = QTimer()
    probe.setInterval(5)
    probe.timeout.connect(tick)

    def run_for(seconds: float, step=None, every_ms: int = 16) -> float:
        gaps.clear()
        last[0] = clock.elapsed()
        probe.start()
        cpu[0] = time.thread_time()
        t = time.perf_counter()
        nxt = t
        i = 0
        while time.perf_counter() - t < seconds:
            if step is not None and time.perf_counter() >= nxt:
                if step(i) is False:
                    break
                i += 1
                nxt += every_ms / 1000
            QApplication.processEvents()
            time.sleep(0.001)
        probe.stop()
        cpu[0] = (time.thread_time() - cpu[0]) * 1000  # the GUI thread's own CPU time (less the load's noise)
        return max(gaps) if gaps else float("nan")

    if kind == "sdxl":
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        # Steps as a user types values into the focused field, each ended by Enter (the field takes a value on
        # Enter, or on the arrow keys), one every 120 ms: 1, 10, 100, 1000, 10000, 1000, 100, 1000, 10000
        typed = [1, 10, 100, 1000, 10000, 1000, 100, 1000, 10000]
        spin = win.panel.widget("steps")
        win.activateWindow()
        spin.setFocus()
        QApplication.processEvents()

        def type_steps(i: int) -> bool:
            if i >= len(typed):
                return False
            spin.lineEdit().selectAll()
            QTest.keyClicks(spin.lineEdit(), str(typed[i]))
            QTest.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
            return True

        prof = None
        if os.environ.get("BENCH_PROFILE") == "typing":  # where the GUI thread's time goes (stderr)
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        watch = None
        if os.environ.get("BENCH_WATCH"):  # print the GUI thread's stack whenever it is 40 ms late (stderr)
            import threading
            import traceback
            gui, stop = threading.main_thread().ident, threading.Event()

            def watchdog():
                while not stop.wait(0.01):
                    if probe.isActive() and clock.elapsed() - last[0] > int(os.environ.get("BENCH_WATCH_MS", "40")):
                        frame = sys._current_frames().get(gui)
                        print(f"--- {clock.elapsed() - last[0]} ms late", file=sys.stderr)
                        traceback.print_stack(frame, limit=12, file=sys.stderr)
                        stop.wait(0.03)

            watch = threading.Thread(target=watchdog, daemon=True)
            watch.start()
        out["stall_typing_ms"] = run_for(3.0, type_steps, every_ms=120)
        out["typing_gui_cpu_ms"] = cpu[0]
        out["typed_steps"] = spin.value()
        pump_until(lambda: win.session.params.steps == 10000 and visible_ready())
        if watch is not None:
            stop.set()
        if prof is not None:
            import pstats
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        pump_until(visible_ready)
        out["rss_stages"]["typing"] = round(_rss_mb()[0])
        bar = grid.verticalScrollBar()
        bar.setValue(0)
        out["stall_scroll_ms"] = run_for(6.0, lambda i: bar.setValue(bar.value() + bar.pageStep() // 2)
                                         or bar.value() < bar.maximum())
        out["rss_stages"]["scroll"] = round(_rss_mb()[0])
        viewer.fps_spin.setValue(24)
        viewer.play()
        out["stall_play_ms"] = run_for(3.0)
        shown_before = viewer.current_frame()
        viewer.stop()
        out["played_frames"] = shown_before
        out["rss_stages"]["play"] = round(_rss_mb()[0])
        # trajectory: the first far jump builds the keyframes; later jumps walk from the nearest one
        win.panel.set_params({"noise": "trajectory"}, family=False)
        pump_until(visible_ready)
        out["trajectory_first_jump_ms"] = jump(9999)
        tj = [jump(rng.randrange(10000)) for _ in range(5)]
        out["trajectory_jump_ms"] = sorted(tj)[len(tj) // 2]
        out["rss_stages"]["trajectory"] = round(_rss_mb()[0])
        win.panel.set_params({"noise": "independent"}, family=False)
        pump_until(visible_ready)
    else:
        bar = grid.verticalScrollBar()
        bar.setValue(bar.maximum() // 2)
        grid.viewport().update()
        pump_until(visible_ready)
    seq = win.store.sequence
    out["cache_mb"] = seq.cache.bytes / 1e6
    out["rss_mb"], out["hwm_mb"] = _rss_mb()
    win.close()
    win.shutdown()
    return out


def _run_child(kind: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True, timeout=1500)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])))
        return 0
    from benchmarks.run import _print_table

    def row(name, value, target, ok, note="-"):
        return (name, "-", value, "-", note, target, "pass" if ok else "MISS")

    d = _run_child("sdxl")
    rows = [
        row("Sequence: first visible thumbnails after a seed change, SDXL x 10000", f"{d['change_ms']:.0f} ms",
            "<= 150 ms", d["change_ms"] <= 150, f"each: {d['change_all_ms']}"),
        row("Sequence: jump to a random frame until shown (median of 7)", f"{d['jump_ms']:.0f} ms", "<= 100 ms",
            d["jump_ms"] <= 100, f"max {d['jump_max_ms']:.0f} ms"),
        row("Sequence: trajectory jump after its keyframes (median of 5)", f"{d['trajectory_jump_ms']:.0f} ms",
            "<= 100 ms", d["trajectory_jump_ms"] <= 100, f"first far jump {d['trajectory_first_jump_ms']:.0f} ms"),
        row("Sequence: longest GUI stall typing into Steps", f"{d['stall_typing_ms']:.0f} ms", "<= 50 ms",
            d["stall_typing_ms"] <= 50, f"9 values in 1 s; GUI thread busy {d['typing_gui_cpu_ms']:.0f} ms of 3 s, "
            f"load {d['load']:.1f}"),
        row("Sequence: longest GUI stall scrolling 10000 frames", f"{d['stall_scroll_ms']:.0f} ms", "<= 50 ms",
            d["stall_scroll_ms"] <= 50),
        row("Sequence: longest GUI stall playing at 24 fps", f"{d['stall_play_ms']:.0f} ms", "<= 50 ms",
            d["stall_play_ms"] <= 50, f"reached frame {d['played_frames']}"),
        row("Sequence: resident memory, SDXL x 10000 on screen", f"{d['rss_mb']:.0f} MB", "<= 1200 MB",
            d["rss_mb"] <= 1200, f"peak {d['hwm_mb']:.0f} MB, cache {d['cache_mb']:.0f} MB"),
    ]
    w = _run_child("wan720p")
    rows.append(row("Sequence: resident memory, Wan 2.1 720p [1,16,21,90,160] x 10000 on screen",
                    f"{w['rss_mb']:.0f} MB", "<= 1600 MB", w["rss_mb"] <= 1600,
                    f"peak {w['hwm_mb']:.0f} MB; first thumbnails {w['open_s']:.1f} s, jump {w['jump_ms']:.0f} ms"))
    _print_table(rows)
    return 0 if all(r[-1] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
