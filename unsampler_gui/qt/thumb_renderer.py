"""Thumbnails made off the GUI thread: ``core.preview.thumbnail`` -> QImage, on a ``Background`` pool.

``ThumbRenderer.render(rows, ...)`` renders a batch of rows; its answer is ``done(rows, [(row, QImage),
...])`` on the GUI thread. QImage, never QPixmap, is made off the GUI thread. ``drop()`` (a new
generation) stops every batch in flight between two rows and its answer is never delivered, so work for
a previous run, other settings or a scrolled-away page is dropped cheaply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

from ..core import preview
from .background import Background, Task, ideal_threads


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


def render_thumbnails(task: Task, rows: Sequence[int], frames, family, settings: ThumbSettings,
                      reference=None) -> list:
    """``[(row, QImage), ...]`` for the rows' frames (CPU tensors, read only); runs on a pool thread and
    stops between two rows once ``task`` is cancelled. ``reference`` is the frame of the shared contrast.
    ``frames`` and ``reference`` may be functions that make them: they are called here, on the pool thread."""
    if callable(frames):
        if task.is_cancelled():
            return []
        frames = frames()
    if callable(reference):
        reference = reference()
    contrast = settings.contrast
    if contrast == "shared":
        contrast = preview.reference_range(reference, family, settings.mode, settings.time_index)
    out = []
    for row, frame in zip(rows, frames):
        if task.is_cancelled():
            break
        img = preview.thumbnail(frame, family, settings.size, settings.mode, contrast, settings.time_index)
        out.append((row, qimage_from_rgb(img)))
    return out


class ThumbRenderer(Background):
    """The pool for thumbnails: ``render`` a batch of rows; ``done(rows, [(row, QImage)])`` arrives on the
    GUI thread (``failed(rows, exc)`` if the batch could not be made)."""

    def __init__(self, parent: Optional[QObject] = None, threads: Optional[int] = None):
        super().__init__(parent, threads=threads or ideal_threads(), name="thumbnails")

    def render(self, rows, frames, family, settings: ThumbSettings, reference=None) -> Task:
        """``frames``: the rows' frames, or a function returning them (called on the pool thread)."""
        rows = list(rows)
        frames = frames if callable(frames) else list(frames)
        return self.submit(lambda task: render_thumbnails(task, rows, frames, family, settings, reference), rows)
