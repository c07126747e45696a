"""Application start: arguments, logging, QApplication (High-DPI, light/dark), icon, the main window.

``unsampler-gui [LATENT_OR_PICTURE] [--model FAMILY_OR_CHECKPOINT] [--run] [--smoke-test]``

A failure while starting is printed (with its traceback) on the console, written to the log file,
and, when Qt works, shown in a message box that names the log file.
"""
from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import traceback
from pathlib import Path
from typing import Optional

log = logging.getLogger("unsampler")

APP_NAME = "Unsampler"
ORG_NAME = "Unsampler"
DESKTOP_FILE = "io.github.unsampler.Unsampler"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="unsampler-gui",
        description="Unsampler: see a model's noise schedule and watch a latent dissolve into noise, "
                    "step by step; export the batch as a ComfyUI .latent.")
    p.add_argument("latent", nargs="?", metavar="LATENT_OR_PICTURE",
                   help="a .latent (or single-tensor .safetensors), a PNG, JPEG or WebP (encoded with the model's "
                        "VAE) or a ComfyUI workflow .json to open; default: the bundled sample")
    p.add_argument("--model", metavar="FAMILY_OR_CHECKPOINT",
                   help="a built-in family name (e.g. SD15, SDXL, Flux) or a checkpoint file/folder to detect")
    p.add_argument("--run", action="store_true", help="start a run as soon as the files are open")
    p.add_argument("--smoke-test", action="store_true",
                   help="build the main window, process events once and exit 0 (for packaging checks)")
    p.add_argument("--screenshot", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--screenshot-screen", action="store_true", help=argparse.SUPPRESS)  # the whole screen, frame too
    p.add_argument("--quit-after-run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--frame", type=int, help=argparse.SUPPRESS)  # frame to select after the run (screenshots)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    args, _qt_args = p.parse_known_args(argv)  # Qt's own options (-style, -platform) pass through
    return args


def _say(text: str) -> None:
    if sys.stderr is not None:
        print(text, file=sys.stderr)


def _version() -> str:
    from .. import __version__
    return __version__


# -- logging ----------------------------------------------------------------------------------------
def log_file_path() -> Path:
    """``<AppLocalDataLocation>/unsampler.log``, or ``~/.cache/unsampler/unsampler.log``."""
    try:
        from PySide6.QtCore import QStandardPaths
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        if base:
            return Path(base) / "unsampler.log"
    except Exception:  # Qt may be what is broken
        pass
    return Path.home() / ".cache" / "unsampler" / "unsampler.log"


def setup_logging() -> Optional[str]:
    """Log to a rotating file (and warnings to the console). Returns the log path, or None."""
    log.setLevel(logging.INFO)
    if sys.stderr is not None:  # a windowed app (pythonw, a frozen bundle) has no console
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("unsampler: %(levelname)s: %(message)s"))
        log.addHandler(console)
    for path in (log_file_path(), Path.home() / ".cache" / "unsampler" / "unsampler.log"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.handlers.RotatingFileHandler(path, maxBytes=2 << 20, backupCount=2, encoding="utf-8")
        except OSError:
            continue
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s: %(message)s"))
        log.addHandler(fh)
        try:
            from . import errors  # a Qt module: it may be what cannot load
            errors.LOG_PATH = str(path)
        except Exception:
            pass
        return str(path)
    return None


# -- Qt ---------------------------------------------------------------------------------------------
def app_icon():
    """The window icon from ``resources/icons/icon-*.png`` and ``resources/icon.svg`` (all optional)."""
    from PySide6.QtGui import QIcon

    from . import resource_path
    icon = QIcon()
    folder = resource_path("icons")
    if folder is not None:
        for png in sorted(Path(folder).glob("icon-*.png")):
            icon.addFile(str(png))
    svg = resource_path("icon.svg")
    if svg is not None:
        icon.addFile(str(svg))
    return icon


#: The interpreter's switch interval in the app (seconds; Python's default is 0.005). The window's thread gets
#: the interpreter back from the worker threads (frames, thumbnails, plans) within it: at 5 ms, each of the
#: many Python-to-Qt calls of a repaint could wait that long, and the longest stall while typing into Steps
#: or scrolling grew past 50 ms on a busy machine (benchmarks/bench_sequence.py, ``SWI`` to compare).
GUI_SWITCH_INTERVAL = 0.0005


def create_application(argv=None):
    """The QApplication (or the existing one): names, High-DPI, style that follows light/dark, icon, and the
    switch interval (``GUI_SWITCH_INTERVAL``, unless one was set already)."""
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    if sys.getswitchinterval() == 0.005:  # Python's default: nobody chose another
        sys.setswitchinterval(GUI_SWITCH_INTERVAL)
    QCoreApplication.setOrganizationName(ORG_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setApplicationVersion(_version())
    from ..core.devices import return_large_blocks
    return_large_blocks()  # frames made on demand by many threads: freed frames go back to the system
    app = QApplication.instance()
    if app is None:
        # Qt 6 scales for High-DPI by itself; pass fractional factors through (125 %, 150 %) for sharp text
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication([sys.argv[0] if sys.argv else "unsampler-gui"] + list(argv or []))
    QGuiApplication.setApplicationDisplayName(APP_NAME)
    QGuiApplication.setDesktopFileName(DESKTOP_FILE)
    if sys.platform.startswith("linux") and not os.environ.get("QT_STYLE_OVERRIDE") and \
            app.style().name().lower() not in ("breeze", "kvantum", "adwaita", "adwaita-dark"):
        app.setStyle("Fusion")  # Fusion follows the system colour scheme (light/dark) since Qt 6.5
    app.setWindowIcon(app_icon())
    follow_color_scheme(app)
    import pyqtgraph as pg
    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    return app


def dark_palette():
    """A dark palette for styles that do not make one themselves (Fusion's roles, dark values)."""
    from PySide6.QtGui import QColor, QPalette

    pal = QPalette()
    R, G = QPalette.ColorRole, QPalette.ColorGroup
    colors = {R.Window: "#2b2b2b", R.WindowText: "#e6e6e6", R.Base: "#1e1e1e", R.AlternateBase: "#262626",
              R.ToolTipBase: "#3a3a3a", R.ToolTipText: "#e6e6e6", R.Text: "#e6e6e6", R.Button: "#333333",
              R.ButtonText: "#e6e6e6", R.BrightText: "#ff6b6b", R.Highlight: "#3d8fd6", R.HighlightedText: "#ffffff",
              R.Link: "#6cb4ff", R.PlaceholderText: "#8a8a8a", R.Light: "#4a4a4a", R.Midlight: "#3c3c3c",
              R.Mid: "#2f2f2f", R.Dark: "#1a1a1a", R.Shadow: "#000000"}
    for role, c in colors.items():
        pal.setColor(role, QColor(c))
    for role in (R.WindowText, R.Text, R.ButtonText):
        pal.setColor(G.Disabled, role, QColor("#7a7a7a"))
    pal.setColor(G.Disabled, R.Highlight, QColor("#4a4a4a"))
    return pal


def follow_color_scheme(app) -> None:
    """Keep the palette in step with the system's light/dark setting, now and when it changes.

    Most platform themes do this already; where the palette does not match the scheme (a style with a
    fixed palette), a matching one is set. Views redraw on the palette change (the sigma plot does).
    """
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette

    def apply(scheme=None) -> None:
        scheme = app.styleHints().colorScheme() if scheme is None else scheme
        is_dark = app.palette().color(QPalette.ColorRole.Window).lightness() < 128
        if scheme == Qt.ColorScheme.Dark and not is_dark:
            app.setPalette(dark_palette())
        elif scheme == Qt.ColorScheme.Light and is_dark:
            app.setPalette(app.style().standardPalette())

    apply()
    app.styleHints().colorSchemeChanged.connect(apply)


def _qt_args(argv) -> list:
    """Arguments argparse did not take, handed to Qt (for example ``-style fusion``)."""
    known = {"--run", "--smoke-test", "--quit-after-run", "--screenshot-screen"}
    out, skip = [], False
    args = list(argv or [])
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("--model", "--screenshot", "--steps", "--frame"):
            skip = True
            continue
        if a in known or a.startswith(("--model=", "--screenshot=", "--steps=", "--frame=")) or not a.startswith("-"):
            continue
        out.append(a)
    return out


def build_window(args: argparse.Namespace, settings=None, deferred: bool = False):
    """The main window, opened on the given files (or the sample and SD15). With ``deferred`` the window is its
    frame until it first paints, and the files open once its contents are built (``MainWindow.when_ready``)."""
    from .family_dialog import load_startup_families
    from .main_window import MainWindow

    from .settings import Settings

    skipped = load_startup_families()  # <config>/families/*.json, before the family list is built
    settings = settings if settings is not None else Settings()
    # the files open at the last close, read before the window's own start changes them
    last_latent, last_model = settings.last_file("latent"), settings.last_file("checkpoint")
    win = MainWindow(settings, deferred=deferred)
    for problem in skipped:
        log.warning("skipped family file %s", problem)
    win.when_ready(lambda: _open_start_files(win, args, skipped, last_latent, last_model))
    return win


def _open_start_files(win, args: argparse.Namespace, skipped, last_latent, last_model) -> None:
    if skipped:
        win.show_status(f"skipped {len(skipped)} family file(s): {skipped[0]}")
    model = args.model
    restore = not args.latent and model is None  # no files named: those open at the last close, if still there
    if args.latent:
        win.open_file(args.latent)
    elif restore and last_latent:
        win.open_file(last_latent)
    else:
        opened_sample = False
        if model is None or _family_takes_sample(model):
            opened_sample = win.open_sample()
        if not opened_sample and model is None:
            win.show_status("open a .latent or a picture (File > Open latent or picture…) or drop one on the window")
    if model:
        win.open_model(model)
    elif restore and last_model:
        win.open_model(last_model)
    if args.steps:
        win.panel.set_params({"steps": args.steps, "end_at_step": max(args.steps, 10000)}, family=False)


def _family_takes_sample(name: str) -> bool:
    from .. import core
    try:
        fam = core.get_family(name)
    except core.UnsamplerError:
        return True  # a checkpoint: the detection decides later
    return fam.latent.channels == 4 and fam.latent.ndim == 4


def _startup_failed(exc: BaseException, log_path: Optional[str], show_box: bool) -> int:
    """The traceback goes to the log file and the console (logging's console handler), the short message to a
    dialog: Qt's when Qt works, the platform's own otherwise."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        log.error("startup failed:\n%s", details)
    except Exception:
        pass
    if sys.stderr is not None and not any(isinstance(h, logging.StreamHandler) and
                                          not isinstance(h, logging.FileHandler) for h in log.handlers):
        print(details, file=sys.stderr)
    if show_box:
        text = f"{_short(exc)}\n\nDetails are in the log file:\n{log_path or '(none)'}"
        shown = False
        try:
            from PySide6.QtCore import Qt
            from PySide6.QtWidgets import QApplication, QMessageBox
            if QApplication.instance() is not None:
                box = QMessageBox(QMessageBox.Icon.Critical, "Unsampler could not start", text)
                box.setTextFormat(Qt.TextFormat.PlainText)  # the error may quote a file name
                box.exec()
                shown = True
        except Exception:  # Qt missing or broken: the platform's own dialog instead
            pass
        if not shown:
            from .native_message import show_native_error
            show_native_error("Unsampler could not start", text)
    return 1


class StartupError(RuntimeError):
    """A start-up problem with a message meant for the user as is."""


def check_platform_libraries() -> None:
    """Before Qt loads its X11 plugin (which aborts the process when a library is missing): name the missing
    libraries and their packages, in the log and in a StartupError (shown by the platform's own dialog)."""
    from .native_message import missing_xcb_libraries, xcb_message

    missing = missing_xcb_libraries()
    if missing:
        log.error("missing X11 libraries: %s; Debian/Ubuntu packages: %s", " ".join(lib for lib, _ in missing),
                  " ".join(dict.fromkeys(p for _, p in missing if p)))
        raise StartupError(xcb_message(missing))


def _short(exc: BaseException) -> str:
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, ImportError) and "PySide6" in str(exc):
        return (f"Qt (PySide6) could not be loaded: {exc}. Reinstall with `pip install PySide6-Essentials`, "
                "or use the `unsampler` command line")
    try:
        from .errors import user_message
        return user_message(exc)
    except Exception:
        return f"{type(exc).__name__}: {exc}"


def _schedule_screenshot(win, app, path: str, quit_after_run: bool, ran: bool, frame=None,
                         whole_screen: bool = False) -> None:
    from PySide6.QtCore import QTimer

    def settle():
        if frame is not None:
            win.select_frame(frame)
        QTimer.singleShot(1000, shoot)

    def shoot():
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # the whole screen shows the window manager's frame and what of the window is off the screen
            shot = win.screen().grabWindow(0) if whole_screen and win.screen() is not None else win.grab()
            ok = shot.save(path)
            _say(f"screenshot {'written to' if ok else 'FAILED:'} {path}")
        finally:
            if quit_after_run:
                win.close()
                app.quit()

    if ran:
        win.runFinished.connect(lambda: QTimer.singleShot(1500, settle))
    else:
        QTimer.singleShot(2500, settle)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    app = None
    try:
        from PySide6.QtCore import QCoreApplication
        QCoreApplication.setOrganizationName(ORG_NAME)  # names the log folder (AppLocalDataLocation)
        QCoreApplication.setApplicationName(APP_NAME)
    except Exception:  # Qt missing or broken: reported below, and logged under ~/.cache
        pass
    log_path = setup_logging()
    log.info("starting Unsampler %s: %s", _version(), " ".join(argv))
    try:
        from .native_message import has_display
        if not has_display():
            raise StartupError("no display: Unsampler's window needs a desktop session (DISPLAY or WAYLAND_DISPLAY "
                               "is not set); for scripts and servers use the `unsampler` command line")
        check_platform_libraries()
        app = create_application(_qt_args(argv))
        from .errors import install_excepthook
        # the smoke test builds everything at once; a real start paints the window first, then loads torch
        win = build_window(args, deferred=not args.smoke_test)
        install_excepthook(lambda: win if not win._closed else None)
        win.show()
    except Exception as e:
        return _startup_failed(e, log_path, show_box=not args.smoke_test)
    if args.smoke_test:
        app.processEvents()
        win.close()
        _say("smoke test: OK")
        return 0
    failed = []

    def start_failed(exc) -> None:
        failed.append(_startup_failed(exc, log_path, show_box=True))
        win.close()
        app.exit(1)

    win.startFailed.connect(start_failed)
    if args.run or args.screenshot:
        win.when_ready(lambda: _after_start(win, app, args))
    code = app.exec()
    win.shutdown()
    return failed[0] if failed else int(code)


def _after_start(win, app, args: argparse.Namespace) -> None:
    """``--run``, ``--screenshot`` and ``--quit-after-run``, once the window's contents are built."""
    if args.run:
        win.run_when_ready()
    if args.screenshot:
        _schedule_screenshot(win, app, args.screenshot, args.quit_after_run, args.run, args.frame,
                             args.screenshot_screen)
    elif args.quit_after_run:
        win.runFinished.connect(win.close)
        win.runFinished.connect(app.quit)


if __name__ == "__main__":
    sys.exit(main())
