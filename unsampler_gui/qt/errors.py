"""Errors for people, tracebacks for the log.

A user sees one clear line (``str(e)`` of a core ``UnsamplerError``, or a short note that points at
the log file for anything unexpected); the full traceback only ever goes to the log. Background work
and workers log the traceback where it happened and send the exception object; the edge (the widget
that shows it) words it here.
"""
from __future__ import annotations

import logging
import sys
import traceback
from typing import Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.errors import UnsamplerError

log = logging.getLogger("unsampler")

#: Set by ``app.setup_logging``; shown in messages about unexpected errors.
LOG_PATH: Optional[str] = None


def user_message(exc: BaseException) -> str:
    """The line to show for an exception. Core errors speak for themselves; the rest point at the log."""
    if isinstance(exc, UnsamplerError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: try fewer steps, or export straight to a file"
    if isinstance(exc, OSError) and exc.strerror:
        name = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{name}"
    where = f"; details are in {LOG_PATH}" if LOG_PATH else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unexpected error: {type(exc).__name__}{': ' + text if text else ''}{where}"


def log_exception(exc: BaseException, context: str = "") -> None:
    """Write the traceback to the log (never to a dialog). Expected user errors are logged briefly."""
    if isinstance(exc, UnsamplerError):
        log.info("%s%s", f"{context}: " if context else "", exc)
        return
    log.error("%s%s", f"{context}: " if context else "",
              "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())


def worded(slot: Callable[[str], None]) -> Callable[[BaseException], None]:
    """A receiver for an ``error(exc)`` or ``failed(exc)`` signal that hands ``slot`` the line to show.

    Workers send the exception itself (its traceback is already in the log); this is where it is worded.
    """
    def receive(exc: BaseException) -> None:
        slot(user_message(exc))

    return receive


def show_error(parent: Optional[QWidget], title: str, message: str) -> QMessageBox:
    """Show a message box without blocking the event loop (window-modal, deleted on close)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # a message may quote a file name: never markup
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.open()
    return box


def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` literally: Qt reads a tooltip as HTML when it looks like HTML, and a
    path such as ``/tmp/<img src='/dev/zero'>.latent`` would make it load /dev/zero as an image."""
    import html

    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>" if text else ""


def ask(parent: Optional[QWidget], title: str, text: str) -> bool:
    """A modal Yes/No question in plain text (``QMessageBox.question`` would read markup in file names)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def install_excepthook(parent_getter=lambda: None) -> None:
    """Uncaught exceptions (in slots, say) are logged and shown as a message; the app keeps running."""
    def hook(etype, value, tb):
        if issubclass(etype, KeyboardInterrupt):
            sys.__excepthook__(etype, value, tb)
            return
        log.error("uncaught exception:\n%s", "".join(traceback.format_exception(etype, value, tb)).rstrip())
        if sys.stderr is not None:
            traceback.print_exception(etype, value, tb, file=sys.stderr)
        try:
            show_error(parent_getter(), "Unsampler", user_message(value))
        except Exception:  # a message box must never make things worse
            pass

    sys.excepthook = hook
