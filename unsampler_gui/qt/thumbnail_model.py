"""A list model over a ``FrameStore``: one row per shown frame, thumbnails made lazily.

Row ``r`` shows frame ``r * stride`` (``frame_of``; ``row_of`` is the inverse, rounding down). The stride is
1 by default; ``set_stride(0)`` makes it automatic (about ``auto_stride``'s 400 cells over the sequence,
chosen again for each new sequence), so that 10,000 near-identical frames are seen at a glance.
Frames are fetched on the renderer's threads (``FrameStore.getters``): a frame of a live sequence is
made there, never on the GUI thread.

``data(index, DecorationRole)`` returns the cached QImage of a row, or a placeholder after asking
the renderer for it; only rows that a view paints are ever asked for. Requests made during one paint
are gathered and sent as a few batched tasks; results come back in batches and are announced by one
``dataChanged`` per batch. Thumbnails live in a bounded LRU cache, so memory stays flat over 10,000
steps. Every planned step has its row from the start. Work for a previous run, or for other settings, is
dropped: the renderer starts a new generation.

**Decoded thumbnails** (``set_decoder``, the TAESD toggle): a painted cell shows its latent2rgb thumbnail
first, and asks for its decoded one too; those requests are batched the same way, decoded on a pool thread
of their own (``DECODE_ROWS`` frames a pass, QImages made there), newest wins (scrolling drops them), and kept
in a second bounded cache. Only the RGB display is decoded.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Optional

from PySide6.QtCore import QObject, QSize, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage

from ..core import preview
from ..core.errors import Cancelled
from ..core.pictures import format_sigma
from ..core.sequence import auto_stride
from .background import Background
from .frame_store import FrameStore
from .thumb_renderer import ThumbRenderer, ThumbSettings, qimage_from_rgb

#: Custom item roles.
StepRole = Qt.ItemDataRole.UserRole + 1  # the node's step index (int)
SigmaRole = Qt.ItemDataRole.UserRole + 2  # model-space sigma (float)
RawSigmaRole = Qt.ItemDataRole.UserRole + 3  # raw-space sigma, sigma / scale_factor (float)
CaptionRole = Qt.ItemDataRole.UserRole + 4  # "frame", "σ sigma" (tuple of two str)
ReadyRole = Qt.ItemDataRole.UserRole + 5  # True when the thumbnail is rendered (never triggers rendering)
FrameRole = Qt.ItemDataRole.UserRole + 6  # the frame number of the row (int)

#: Thumbnails kept in memory, at most (and at most CACHE_BYTES of pixels).
CACHE_ITEMS = 2000
CACHE_BYTES = 96 << 20
#: Rows per rendering task.
BATCH_ROWS = 24
#: Rows per decoding task (TAESD thumbnails). One: on the CPU a frame takes about a second and batching gains
#: little (``make bench``), so each cell shows its picture as soon as it is decoded, in the order painted.
DECODE_ROWS = 1


class ThumbnailCache:
    """A bounded LRU of row -> QImage (by count and by bytes)."""

    def __init__(self, max_items: int = CACHE_ITEMS, max_bytes: int = CACHE_BYTES):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._d: "OrderedDict[int, QImage]" = OrderedDict()
        self.bytes = 0

    def get(self, row: int) -> Optional[QImage]:
        img = self._d.get(row)
        if img is not None:
            self._d.move_to_end(row)
        return img

    def put(self, row: int, img: QImage) -> None:
        old = self._d.pop(row, None)
        if old is not None:
            self.bytes -= old.sizeInBytes()
        self._d[row] = img
        self.bytes += img.sizeInBytes()
        while self._d and (len(self._d) > self.max_items or self.bytes > self.max_bytes):
            _, dropped = self._d.popitem(last=False)
            self.bytes -= dropped.sizeInBytes()

    def __contains__(self, row: int) -> bool:
        return row in self._d

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        self._d.clear()
        self.bytes = 0


class ThumbnailModel(QStringListModel):
    """Rows are the run's planned steps; DecorationRole is a lazily rendered thumbnail, or a placeholder
    until the step's frame has arrived.

    The base class is a list of empty strings only so that ``rowCount`` stays in C++: QListView asks
    for it once per row when it lays out, selects or maps a rectangle (tens of thousands of calls for
    10,000 rows), and a Python override would take the GIL for each, stalling the window while a job
    runs. ``data`` and ``flags`` are Python overrides, asked for painted cells only.
    """

    #: Rows sent for rendering, once per batch (tests and diagnostics).
    renderRequested = Signal(object)
    #: Decoding the thumbnails failed (the exception); they stay latent2rgb until another decoder is set.
    decodeFailed = Signal(object)

    def __init__(self, store: FrameStore, parent: Optional[QObject] = None,
                 renderer: Optional[ThumbRenderer] = None, cache_items: int = CACHE_ITEMS,
                 cache_bytes: int = CACHE_BYTES):
        super().__init__(parent)
        self._store = store
        self._renderer = renderer or ThumbRenderer(self)
        self._renderer.done.connect(self._on_rendered)
        self._renderer.failed.connect(self._on_render_failed)
        self._settings = ThumbSettings()
        self._rows = 0
        self._stride = 1
        self._want_stride = 1
        self._auto_stride = False
        self._cache = ThumbnailCache(cache_items, cache_bytes)
        self._pending: set = set()  # rows asked for, not yet delivered
        self._queue: list = []  # rows asked for during this paint, not yet sent
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._flush)
        self._placeholder = self._make_placeholder()
        self._decoder = None  # (token, decode(frames, time_index, cancel)) of decoded thumbnails, or None
        self._decode_failed = False  # the decoder failed: latent2rgb until another one is set
        self._decoded = ThumbnailCache(cache_items, cache_bytes)
        self._dpending: set = set()
        self._dqueue: list = []
        self._dpool = Background(self, threads=1, name="thumbnail-decode")
        self._dpool.done.connect(self._on_decoded)
        self._dpool.failed.connect(self._on_decode_error)
        self._dpool.cancelled.connect(self._on_decode_failed)
        store.reset.connect(self._on_reset)
        store.framesAdded.connect(self._on_frames_added)
        store.add_renderer(self)
        self._on_reset()

    # -- model ----------------------------------------------------------------------------------

    @property
    def store(self) -> FrameStore:
        return self._store

    @property
    def renderer(self) -> ThumbRenderer:
        return self._renderer

    @property
    def cache(self) -> ThumbnailCache:
        return self._cache

    @property
    def placeholder(self) -> QImage:
        return self._placeholder

    def row_count(self) -> int:
        """The number of rows, without a round trip through Qt."""
        return self._rows

    @property
    def stride(self) -> int:
        """Every how many frames a row is shown."""
        return self._stride

    @property
    def stride_is_auto(self) -> bool:
        return self._auto_stride

    def set_stride(self, k: int) -> None:
        """Show every ``k``-th frame (0: choose automatically for each sequence)."""
        self._auto_stride = int(k) <= 0
        self._want_stride = max(1, int(k))
        self._layout_rows()

    def _stride_for(self, n: int) -> int:
        return auto_stride(n) if self._auto_stride else self._want_stride

    def frame_of(self, row: int) -> int:
        return row * self._stride

    def row_of(self, frame: int) -> int:
        """The row that shows ``frame``, or the one before it when the stride skips it."""
        return max(0, min(self._rows - 1, int(frame) // self._stride))

    def flags(self, index):
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < self._rows:
            return None
        row = index.row()
        s = self._store
        if role == Qt.ItemDataRole.DecorationRole:
            return self.decoration(row)
        if role == ReadyRole:
            return row in self._cache
        f = self.frame_of(row)
        if role == Qt.ItemDataRole.DisplayRole:
            return str(f)
        if role == CaptionRole:
            return self.caption(row)
        if role == FrameRole:
            return f
        if role == StepRole:
            return s.position(f)
        if role == SigmaRole:
            return s.sigma(f)
        if role == RawSigmaRole:
            return s.raw_sigma(f)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"frame {f} of {s.n_steps}\nstep {s.schedule_step(f)} of the schedule\n"
                    f"\u03c3 {s.sigma(f):.6g} (model space)\nraw {s.raw_sigma(f):.6g} (sigma / scale_factor)")
        return None

    def decoration(self, row: int) -> QImage:
        """The row's thumbnail, or the placeholder after asking for it (the delegate calls this directly:
        no round trip through QVariant for every painted cell)."""
        if self._decoder is not None and self._settings.mode == preview.RGB:
            dec = self._decoded.get(row)
            if dec is not None:
                return dec
            self.request_decoded(row)
        img = self._cache.get(row)
        if img is None:
            self.request(row)
            return self._placeholder
        return img

    def caption(self, row: int) -> tuple:
        """("frame i", "σ sigma") of a row; its schedule step is in the tooltip and the viewer."""
        s, f = self._store, self.frame_of(row)
        return f"frame {f}", f"\u03c3 {format_sigma(s.sigma(f))}"

    # -- settings -------------------------------------------------------------------------------

    @property
    def settings(self) -> ThumbSettings:
        return self._settings

    def set_settings(self, **changes) -> None:
        """Change size, item, time_index, mode or contrast; every thumbnail is made again."""
        new = dataclasses.replace(self._settings, **changes)
        if new == self._settings:
            return
        self._settings = new
        self._placeholder = self._make_placeholder()
        self._invalidate()
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(self._rows - 1), [Qt.ItemDataRole.DecorationRole])

    def thumb_size(self) -> int:
        return self._settings.size

    # -- rendering ------------------------------------------------------------------------------

    def request(self, row: int) -> None:
        """Ask for a row's thumbnail (batched: sent when the current paint is over)."""
        if row in self._pending or row in self._cache or not self._store.has(self.frame_of(row)):
            return
        self._pending.add(row)
        self._queue.append(row)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def busy(self) -> bool:
        """True while thumbnails that views asked for are queued or being rendered (or decoded)."""
        return bool(self._queue or self._pending or self._dqueue or self._dpending)

    def drop_queued(self) -> None:
        """Forget every request not yet delivered (the view scrolled away): the next paint asks again."""
        self._flush_timer.stop()
        self._queue.clear()
        self._renderer.drop()
        self._pending.clear()
        self._drop_decodes()

    # -- decoded thumbnails ---------------------------------------------------------------------

    @property
    def decoder_token(self):
        """What decodes the thumbnails (None: latent2rgb only)."""
        return self._decoder[0] if self._decoder is not None else None

    def set_decoder(self, token, decode) -> None:
        """Decode the thumbnails with ``decode(frames, time_index, cancel)`` -> uint8 ``[N, H, W, 3]`` (on a pool
        thread); ``token`` names the decoder (a change of it decodes again). ``(None, None)``: latent2rgb only."""
        if token == self.decoder_token:
            return
        self._decoder = None if token is None else (token, decode)
        self._decode_failed = False
        self._drop_decodes()
        self._decoded.clear()
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(self._rows - 1), [Qt.ItemDataRole.DecorationRole])

    def is_decoded(self, row: int) -> bool:
        """True when the row's decoded thumbnail is in (never triggers decoding)."""
        return row in self._decoded

    def request_decoded(self, row: int) -> None:
        if (self._decoder is None or self._decode_failed or row in self._dpending or row in self._decoded
                or not self._store.has(self.frame_of(row))):
            return
        self._dpending.add(row)
        self._dqueue.append(row)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _drop_decodes(self) -> None:
        self._dqueue.clear()
        self._dpending.clear()
        self._dpool.drop()

    def _flush_decodes(self) -> None:
        rows = [r for r in self._dqueue if self._store.has(self.frame_of(r)) and r not in self._decoded]
        self._dqueue.clear()
        if not rows or self._decoder is None:
            return
        (_token, decode), s, st = self._decoder, self._settings, self._store
        size = QSize(s.size, s.size)
        for i in range(0, len(rows), DECODE_ROWS):
            part = rows[i:i + DECODE_ROWS]
            fetch = st.getters([self.frame_of(r) for r in part], s.item)

            def work(task, part=part, fetch=fetch):
                frames = list(fetch())
                if task.is_cancelled():
                    raise Cancelled("superseded")
                pictures = decode(frames, s.time_index, task.is_cancelled)
                return [(row, qimage_from_rgb(p).scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                        Qt.TransformationMode.SmoothTransformation))
                        for row, p in zip(part, pictures)]

            self._dpool.submit(work, part)

    def _on_decoded(self, asked, images) -> None:  # only the current generation's arrive
        self._dpending.difference_update(asked)
        rows = [row for row, img in images if row < self._rows]
        for row, img in images:
            if row < self._rows:
                self._decoded.put(row, img)
        if rows:
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), [Qt.ItemDataRole.DecorationRole])

    def _on_decode_failed(self, asked, _exc=None) -> None:
        self._dpending.difference_update(asked)

    def _on_decode_error(self, asked, exc) -> None:  # in the log; the cells keep latent2rgb, nothing is retried
        self._on_decode_failed(asked)
        if not self._decode_failed:
            self._decode_failed = True
            self._drop_decodes()  # the rows still queued would fail the same way
            self.decodeFailed.emit(exc)

    def flush(self) -> None:
        """Send the gathered requests now (normally done by a zero-delay timer after the paint)."""
        self._flush_timer.stop()
        self._flush()

    def _flush(self) -> None:
        rows = [r for r in self._queue if self._store.has(self.frame_of(r)) and r not in self._cache]
        self._queue.clear()
        if not rows:
            self._flush_decodes()
            return
        s, st = self._settings, self._store
        shared = s.contrast == "shared" and st.has(0)
        reference = st.getter(0, s.item) if shared else None
        settings = s if shared or s.contrast != "shared" else dataclasses.replace(s, contrast="auto")
        self.renderRequested.emit(list(rows))
        for i in range(0, len(rows), BATCH_ROWS):
            part = rows[i:i + BATCH_ROWS]
            fetch = st.getters([self.frame_of(r) for r in part], s.item)  # called on the renderer's thread
            self._renderer.render(part, fetch, st.family, settings, reference)
        self._flush_decodes()  # after the latent2rgb batches: those are shown first

    def _on_rendered(self, asked, images) -> None:  # only answers for the current settings and run arrive
        self._pending.difference_update(asked)
        if not images:
            return
        lo = hi = None
        for row, img in images:
            if row < self._rows:
                self._cache.put(row, img)
                lo = row if lo is None else min(lo, row)
                hi = row if hi is None else max(hi, row)
        if lo is not None:
            self.dataChanged.emit(self.index(lo), self.index(hi), [Qt.ItemDataRole.DecorationRole])

    def _on_render_failed(self, asked, _exc) -> None:  # already in the log; the cells keep their placeholder
        self._pending.difference_update(asked)

    def _invalidate(self) -> None:
        self._flush_timer.stop()
        self._queue.clear()
        self._pending.clear()
        self._cache.clear()
        self._renderer.drop()  # a new generation: thumbnails in flight are for the old settings or run
        self._drop_decodes()
        self._decoded.clear()

    def _make_placeholder(self) -> QImage:
        n = max(1, int(self._settings.size))
        img = QImage(n, n, QImage.Format.Format_RGB888)
        img.fill(QColor(40, 40, 44))
        return img

    # -- store ----------------------------------------------------------------------------------

    def _layout_rows(self) -> None:
        n = self._store.n_steps
        stride = self._stride_for(n)
        if stride == self._stride and self._rows == -(-n // stride):
            return
        self._invalidate()
        self._stride = stride
        self._rows = -(-n // stride)
        self.setStringList([""] * self._rows)  # resets the model (one modelReset for the views)

    def _on_reset(self) -> None:
        self._invalidate()
        st = self._store
        item = min(self._settings.item, max(0, st.batch - 1))
        t = min(self._settings.time_index, max(0, st.time_steps - 1))
        mode = self._settings.mode
        if mode != "rgb" and not 0 <= int(mode) < max(1, st.channels):
            mode = "rgb"
        self._settings = dataclasses.replace(self._settings, item=item, time_index=t, mode=mode)
        # every frame shown has its cell from the start: no relayout as frames arrive
        n = st.n_steps
        self._stride = self._stride_for(n)
        self._rows = -(-n // self._stride)
        self.setStringList([""] * self._rows)  # resets the model (one modelReset for the views)

    def _on_frames_added(self, start: int, stop: int) -> None:
        """Frames arrived: their cells swap the placeholder for a thumbnail (only visible ones ask for one)."""
        lo, hi = -(-start // self._stride), -(-stop // self._stride)  # rows whose frames are in start..stop-1
        if hi > lo and lo < self._rows:
            self.dataChanged.emit(self.index(lo), self.index(min(hi, self._rows) - 1),
                                  [Qt.ItemDataRole.DecorationRole])

    def shutdown(self) -> None:
        self._flush_timer.stop()
        self._renderer.shutdown()
        self._dpool.shutdown()

    def wait(self, msecs: int = -1) -> bool:
        return self._renderer.wait(msecs) and self._dpool.wait(msecs)


__all__ = ["ThumbnailModel", "ThumbnailCache", "StepRole", "SigmaRole", "RawSigmaRole", "CaptionRole", "ReadyRole", "FrameRole",
           "CACHE_ITEMS", "CACHE_BYTES"]
