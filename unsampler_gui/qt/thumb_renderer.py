"""Thumbnails made off the GUI thread: ``core.preview.thumbnail`` -> QImage, on a private pool.

A ``ThumbTask`` renders a batch of rows and delivers ``(ticket, [(row, QImage), ...])`` through the
renderer's ``rendered`` signal (queued to the GUI thread). QImage, never QPixmap, is made off the GUI
thread. A task whose ticket is older than ``renderer.min_ticket`` when it starts does nothing and
reports its rows as skipped, so work for a previous run (or a scrolled-away page) is dropped cheaply.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Signal
from PySide6.QtGui import QImage

from ..core import preview
from .background import Background, ideal_threads

log = logging.getLogger("unsampler")


def qimage_from_rgb(img: np.ndarray) -> QImage:
    """A uint8 [H, W, 3] array as a QImage that owns its pixels (safe to pass between threads)."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    if img.ndim == 2:
        return QImage(img.tobytes(), w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(img.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


@dataclass(frozen=True)
class ThumbSettings:
    """How thumbnails look; a change invalidates every cached thumbnail."""

    size: int = 96
    item: int = 0
    time_index: int = 0
    mode: object = preview.RGB  # "rgb" or a channel number
    contrast: object = "fixed"  # "fixed", "auto" or "shared" (the range of step 0)


class ThumbTask(QRunnable):
    """Render the thumbnails of some rows: frames are CPU tensors, read only."""

    def __init__(self, renderer: "ThumbRenderer", ticket: int, rows: Sequence[int], frames: Sequence,
                 family, settings: ThumbSettings, reference=None):
        super().__init__()
        self.setAutoDelete(True)
        self._renderer = renderer
        self.ticket = ticket
        self.rows = list(rows)
        self._frames = list(frames)
        self._family = family
        self._settings = settings
        self._reference = reference  # frame for the shared contrast range

    def run(self) -> None:  # on a pool thread
        r = self._renderer
        out = []
        if not r.closed and self.ticket >= r.min_ticket:
            s = self._settings
            try:
                contrast = s.contrast
                if contrast == "shared":
                    contrast = preview.reference_range(self._reference, self._family, s.mode, s.time_index)
                for row, frame in zip(self.rows, self._frames):
                    if r.closed or self.ticket < r.min_ticket:
                        break
                    img = preview.thumbnail(frame, self._family, s.size, s.mode, contrast, s.time_index)
                    out.append((row, qimage_from_rgb(img)))
            except Exception:  # a bad frame must not take the pool down
                log.exception("thumbnail rendering failed")
        self._frames = self._reference = None
        if r.closed:
            return
        try:
            r.rendered.emit(self.ticket, out, self.rows)
        except RuntimeError:  # the renderer is gone
            pass


class ThumbRenderer(Background):
    """The pool for thumbnails. ``rendered(ticket, [(row, QImage)], rows_asked)`` arrives on the GUI thread."""

    rendered = Signal(int, object, object)

    def __init__(self, parent: Optional[QObject] = None, threads: Optional[int] = None):
        super().__init__(parent, threads=threads or ideal_threads(), name="thumbnails")
        self.min_ticket = 0  # tasks with an older ticket are skipped (read from pool threads)
        self._ticket = 0

    def next_ticket(self) -> int:
        self._ticket += 1
        return self._ticket

    def drop_older(self) -> None:
        """Skip every task submitted so far that has not finished (queued ones are removed outright)."""
        self.clear()
        self.min_ticket = self._ticket + 1

    def render(self, rows, frames, family, settings: ThumbSettings, reference=None) -> int:
        ticket = self.next_ticket()
        self.start(ThumbTask(self, ticket, rows, frames, family, settings, reference))
        return ticket
