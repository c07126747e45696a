"""The frames the views show (the grid, the viewer and the plots): the live sequence of the current inputs.

**The sequence** (what the window uses). ``follow(session)`` makes, on a worker thread, the plan of the
session's current inputs and its ``core.sequence.Sequence``; once it is there the store holds every frame
of it (``reset``, then ``framesAdded(0, n)`` and ``finished``): frames are made on demand, off the GUI
thread, by whoever renders them (``getter(step, item)`` and ``getters(steps, item)`` return functions to
call on a pool thread), and the per-step statistics fill in coarse first (``statsChanged``). A newer
``follow`` supersedes the older one: its work is dropped. There is no run to wait for and nothing stale.

**A run's frames** (the older feeding, kept for views driven by a job). The worker feeds it on the GUI thread: ``begin(plan)``, then ``add(start, stop, frames)`` for each
chunk as it is made, then ``finish(result)``. Frames are kept by reference (the chunks are views of
the job's one output tensor, final once delivered): nothing is copied. Per-step statistics are
computed on a background thread as chunks arrive and announced by ``statsChanged``.

Steps here are output indices ``0 .. n_steps-1`` (the plan's ``positions`` in output order);
``position(step)`` is the node's step index and ``sigma(step)`` its model-space sigma.

**Back-pressure for a paced job** (``FrameStore(paced=True)``, with ``worker.Pacing``): ``planTaken``
comes once the views' reset for a new run has been laid out and painted, ``firstFramesTaken`` once
every view that renders frames of the store (``add_renderer``) has shown the first ones. The window
connects them to the worker's ``plan_ack`` and ``first_frames_ack``.
"""
from __future__ import annotations

import weakref
from typing import Optional

import numpy as np
import torch
from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal

from .. import core
from ..core.devices import human_bytes, lower_thread_priority
from ..core.sequence import CACHE_BYTES, Sequence
from ..core.stats import StepStats, frame_stats
from .background import Background

#: A sequence's frames are fetched for rendering this many bytes at a time, at most.
FETCH_BYTES = 32 << 20
#: How long the views get to lay out and repaint a new run before ``planTaken`` (milliseconds).
PLAN_SETTLE_MS = 60
#: How often the renderers are asked whether they are done with the first frames (milliseconds).
SETTLE_POLL_MS = 10
#: How long, at most, ``firstFramesTaken`` waits for busy renderers (milliseconds).
FIRST_FRAMES_LIMIT_MS = 300
#: A sequence's statistics start this long after it is shown, when no newer one came meanwhile
#: (milliseconds): while the user types into Steps they do not compete with the frames on screen.
STATS_DELAY_MS = 250


class _Coalescer(QObject):
    """Emits ``signal(start, stop)`` for the union of the ranges pushed, at most once per ``interval_ms``.

    With interval 0 every push is emitted at once. A run delivers a chunk every few milliseconds;
    letting every view repaint for each would saturate the event loop, so the window uses ~10 Hz.
    """

    def __init__(self, signal, interval_ms: int, parent: QObject):
        super().__init__(parent)
        self._signal = signal
        self.interval_ms = interval_ms
        self._range: Optional[tuple] = None
        self._clock = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    def push(self, start: int, stop: int) -> None:
        r = self._range
        self._range = (start, stop) if r is None else (min(r[0], start), max(r[1], stop))
        if self.interval_ms <= 0 or not self._clock.isValid() or self._clock.elapsed() >= self.interval_ms:
            self.flush()
        elif not self._timer.isActive():
            self._timer.start(max(1, self.interval_ms - int(self._clock.elapsed())))

    def flush(self) -> None:
        self._timer.stop()
        r, self._range = self._range, None
        if r is not None:
            self._clock.start()
            self._signal.emit(*r)

    def drop(self) -> None:
        self._timer.stop()
        self._range = None


class FrameStore(QObject):
    """A run's frames and per-step statistics, filled chunk by chunk.

    ``notify_interval_ms`` > 0 coalesces ``framesAdded`` and ``statsChanged`` to at most one each per
    interval (the data itself is readable as soon as ``add`` returns).
    """

    reset = Signal()  # a new run began (or the store was cleared): every view starts over
    framesAdded = Signal(int, int)  # steps [start, stop) arrived
    statsChanged = Signal(int, int)  # statistics of steps [start, stop) are in
    finished = Signal()  # the run completed; every frame is in
    planTaken = Signal()  # (paced) the views have laid out the new run
    firstFramesTaken = Signal()  # (paced) the renderers have shown the run's first frames
    sequenceFailed = Signal(str)  # the current inputs make no sequence: why (the store is cleared)

    def __init__(self, parent: Optional[QObject] = None, notify_interval_ms: int = 0, paced: bool = False):
        super().__init__(parent)
        self._frames_note = _Coalescer(self.framesAdded, notify_interval_ms, self)
        self._stats_note = _Coalescer(self.statsChanged, notify_interval_ms, self)
        self._stats_pool = Background(self, threads=1, name="frame-stats")
        self._stats_pool.done.connect(self._on_stats)
        self._seq_stats = Background(self, threads=1, name="sequence-stats")
        self._seq_stats.posted.connect(self._on_stats_rows)
        self._builder = Background(self, threads=1, name="sequence", latest_only=True)
        self._builder.done.connect(self._on_built)
        self._builder.failed.connect(lambda _tag, exc: self._build_failed(exc))
        self.cache_bytes = CACHE_BYTES
        self._browsing = False
        self._seq: Optional[Sequence] = None
        self._seq_inputs = None
        self._expected: Optional[dict] = None
        self._generation = 0
        self.paced = paced
        self.first_frames_limit_ms = FIRST_FRAMES_LIMIT_MS
        self._renderers: "weakref.WeakSet" = weakref.WeakSet()
        self._plan_timer = QTimer(self)
        self._plan_timer.setSingleShot(True)
        self._plan_timer.setInterval(PLAN_SETTLE_MS)
        self._plan_timer.timeout.connect(self.planTaken)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(SETTLE_POLL_MS)
        self._poll_timer.timeout.connect(self._poll_renderers)
        self._poll_clock = QElapsedTimer()
        self._stats_timer = QTimer(self)
        self._stats_timer.setSingleShot(True)
        self._stats_timer.setInterval(STATS_DELAY_MS)
        self._stats_timer.timeout.connect(self._start_sequence_stats)
        self._clear_state()

    def _clear_state(self) -> None:
        if hasattr(self, "_stats_timer"):
            self._stats_timer.stop()
        self._frames_note.drop()
        self._stats_note.drop()
        self._plan_timer.stop()
        self._poll_timer.stop()
        self._plan: Optional[core.Plan] = None
        self._chunks: list = []  # (start, stop, tensor rows [start*B, stop*B))
        self._chunk_of = np.zeros(0, dtype=np.int32)  # step -> index into _chunks, -1 = not in
        self._full: Optional[torch.Tensor] = None
        self._available = 0
        self._finished = False
        self._sigmas = np.zeros(0)
        self._raw_sigmas = np.zeros(0)
        self._positions = np.zeros(0, dtype=np.int64)
        self._stats = StepStats(0, 1)
        self._seq = None
        self._seq_inputs = None
        self._expected = None

    # -- the sequence (GUI thread) ----------------------------------------------------------------

    def follow(self, session) -> None:
        """Show the sequence of the session's current inputs (made on a worker thread; newest wins).
        While a file is browsed (``browse``) nothing changes until ``stop_browsing``."""
        if self._browsing:
            return
        inputs = session.inputs()
        if self._seq is not None and inputs == self._seq_inputs:
            self._builder.drop()  # back to what is shown: a build in flight is superseded
            return
        job = session.plan_job()
        if job is None:
            self._builder.drop()
            if self._plan is not None:
                self.clear()
            return
        budget = self.cache_bytes

        def build(task):
            inputs, plan, error, _available = job()
            if plan is None or task.is_cancelled():
                return inputs, None, error
            if plan.step_bytes > budget // 2:  # a big batch given as the input (an export opened as a latent)
                return inputs, None, (f"one frame of this input is {human_bytes(plan.step_bytes)} "
                                      f"({plan.batch} latents): over half the frame cache of "
                                      f"{human_bytes(budget)}, so no frames are shown; export to a file instead")
            seq = Sequence(plan, cache_bytes=budget)
            return inputs, seq, seq.expected_stats()

        self._builder.submit(build, inputs)

    def browse(self, seq) -> None:
        """Show the frames of a batch file (a ``core.batch_file.BatchSequence``) instead of the session's
        sequence, until ``stop_browsing``."""
        self._builder.drop()
        self._browsing = True
        self.set_sequence(seq, None, None)

    def stop_browsing(self, session=None) -> None:
        """Back to the session's sequence (followed at once when ``session`` is given)."""
        was, self._browsing = self._browsing, False
        if was:
            self.clear()
        if session is not None:
            self.follow(session)

    @property
    def browsing(self) -> bool:
        """True while the frames shown are a browsed file's."""
        return self._browsing

    def set_cache_bytes(self, n: int) -> None:
        """A new frame cache budget: for the sequences made from now on and, at once, the one shown."""
        self.cache_bytes = int(n)
        if self._seq is not None:
            self._seq.cache.resize(self.cache_bytes)

    def set_sequence(self, seq: Sequence, inputs=None, expected: Optional[dict] = None) -> None:
        """Hold ``seq``: every view starts over on its frames, and its statistics start filling."""
        self._generation += 1
        self._stats_pool.drop()
        self._seq_stats.drop()
        self._clear_state()
        plan = seq.plan
        self._plan, self._seq, self._seq_inputs, self._expected = plan, seq, inputs, expected
        n = seq.n_frames
        self._positions = np.asarray(seq.positions, dtype=np.int64)
        self._sigmas, self._raw_sigmas = seq.sigmas, seq.raw_sigmas
        self._chunk_of = np.zeros(n, dtype=np.int32)
        self._available = n
        self._finished = True
        self._stats = StepStats(n, plan.batch)
        self.reset.emit()
        self.framesAdded.emit(0, n)
        self.finished.emit()
        self._stats_timer.start()  # the statistics once no newer sequence came (STATS_DELAY_MS)

    def _start_sequence_stats(self) -> None:
        seq = self._seq
        if seq is None:
            return

        def stats(task):
            lower_thread_priority()  # the statistics yield the CPU to the window and to the frames it shows
            for rows, fs in seq.stats_chunks(task.is_cancelled):
                task.post((rows, fs))

        self._seq_stats.submit(stats, None)

    def _on_built(self, _tag, answer) -> None:
        inputs, seq, extra = answer
        if seq is None:
            self.clear()
            if extra:
                self.sequenceFailed.emit(extra)
            return
        self.set_sequence(seq, inputs, extra)

    def _build_failed(self, exc) -> None:
        from .errors import user_message

        self.clear()
        self.sequenceFailed.emit(user_message(exc))

    def _on_stats_rows(self, _tag, payload) -> None:
        rows, fs = payload
        self._stats.add_rows(rows, fs)
        self._stats_note.push(min(rows), max(rows) + 1)

    @property
    def sequence(self) -> Optional[Sequence]:
        """The sequence shown (None when the store holds a run's frames, or nothing)."""
        return self._seq

    @property
    def sequence_inputs(self):
        """The session inputs the sequence shown was made from."""
        return self._seq_inputs

    @property
    def expected(self) -> Optional[dict]:
        """The formula's expected per-step {"mean", "std"} ``[n, B]`` of the sequence (None for a run)."""
        return self._expected

    def getter(self, step: int, item: int = 0):
        """A function that returns frame ``step`` of item ``item``, to call on a pool thread (it may make it)."""
        seq = self._seq
        if seq is not None:
            return lambda: seq.frame(step, item)
        frame = self.frame(step, item)
        return lambda: frame

    def getters(self, steps, item: int = 0):
        """A function that returns the frames of ``steps`` of item ``item`` (an iterable, made a group of
        at most ``FETCH_BYTES`` at a time as it is read), to call on a pool thread."""
        seq = self._seq
        steps = [int(s) for s in steps]
        if seq is not None:
            per = max(1, FETCH_BYTES // max(1, seq.plan.step_bytes))

            def fetch():
                for k in range(0, len(steps), per):
                    for f in seq.frames(steps[k:k + per]):
                        yield f[item]

            return fetch
        frames = [self.frame(s, item) for s in steps]
        return lambda: frames

    # -- feeding (GUI thread) -------------------------------------------------------------------

    def begin(self, plan: core.Plan) -> None:
        """Start holding a new run: drops the previous run's frames and pending work."""
        self._builder.drop()
        self._browsing = False
        self._generation += 1
        self._stats_pool.drop()
        self._seq_stats.drop()
        self._clear_state()
        self._plan = plan
        n = len(plan.positions)
        pos = np.asarray(plan.positions, dtype=np.int64)
        self._positions = pos
        self._sigmas = plan.model_sigmas.double().numpy()[pos]
        self._raw_sigmas = plan.raw_sigmas.double().numpy()[pos]
        self._chunk_of = np.full(n, -1, dtype=np.int32)
        self._stats = StepStats(n, plan.batch)
        self.reset.emit()
        if self.paced:  # the reset's layout and repaint are posted events: they run before the timer fires
            self._plan_timer.start()

    def add(self, start: int, stop: int, frames: torch.Tensor) -> None:
        """Steps ``[start, stop)`` are final: ``frames`` holds rows ``[start*B, stop*B)`` (kept, not copied)."""
        if self._plan is None:
            return
        start, stop = int(start), int(stop)
        B = self.batch
        if not 0 <= start < stop <= self.n_steps or frames.shape[0] != (stop - start) * B:
            raise core.BadParameterError(f"chunk {start}..{stop} with {frames.shape[0]} rows does not fit "
                                         f"{self.n_steps} steps x {B} items")
        first = not self._chunks
        self._chunk_of[start:stop] = len(self._chunks)
        self._chunks.append((start, stop, frames))
        grown = self._available
        while grown < self.n_steps and self._chunk_of[grown] >= 0:
            grown += 1
        self._available = grown
        self._stats_pool.submit(lambda task: frame_stats(frames), (start, stop))
        self._frames_note.push(start, stop)
        if first and self.paced:
            self._poll_clock.start()
            self._poll_timer.start()

    def finish(self, result: core.UnsampleResult) -> None:
        """The run completed: frames are read from ``result.latent`` from now on (when it is in memory)."""
        if self._plan is None:
            return
        if result is not None and result.latent is not None and result.latent.shape[0] == self.n_steps * self.batch:
            missing = np.flatnonzero(self._chunk_of < 0)
            self._full = result.latent
            if missing.size:  # a run that delivered no partials (or not all): take everything from the result
                self._chunk_of[:] = 0
                self._chunks = [(0, self.n_steps, result.latent)]
                self._available = self.n_steps
                full = result.latent
                self._stats_pool.submit(lambda task: frame_stats(full), (0, self.n_steps))
                self._frames_note.push(int(missing[0]), self.n_steps)
        self._frames_note.flush()
        self._finished = True
        self.finished.emit()

    def clear(self) -> None:
        """Forget the run or the sequence (frames, statistics, pending work)."""
        self._builder.drop()
        self._generation += 1
        self._stats_pool.drop()
        self._seq_stats.drop()
        self._clear_state()
        self.reset.emit()

    def _on_stats(self, tag, fs) -> None:  # only the current run's: the pool drops the others
        start, stop = tag
        self._stats.add_stats(start, stop, fs)
        self._stats_note.push(start, stop)

    # -- pacing ---------------------------------------------------------------------------------

    def add_renderer(self, view) -> None:
        """``view.busy()`` is True while it is rendering frames of this store (thumbnails, a preview);
        ``firstFramesTaken`` waits for it. Views register themselves when they take the store."""
        self._renderers.add(view)

    def renderers_busy(self) -> bool:
        """True while a registered view is still rendering frames it was given."""
        for view in list(self._renderers):
            try:
                if view.busy():
                    return True
            except RuntimeError:  # the view's C++ side is gone: it renders nothing any more
                continue
        return False

    def _poll_renderers(self) -> None:
        if not self.renderers_busy() or self._poll_clock.elapsed() >= self.first_frames_limit_ms:
            self._poll_timer.stop()
            self.firstFramesTaken.emit()

    # -- reading --------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Changes whenever a run begins or the store is cleared; tags work to drop stale results."""
        return self._generation

    @property
    def plan(self) -> Optional[core.Plan]:
        return self._plan

    @property
    def n_steps(self) -> int:
        return len(self._positions)

    @property
    def available(self) -> int:
        """How many steps are in: steps ``0 .. available-1`` can be read."""
        return self._available

    @property
    def is_finished(self) -> bool:
        return self._finished

    @property
    def batch(self) -> int:
        return self._plan.batch if self._plan is not None else 1

    @property
    def family(self) -> Optional[core.Family]:
        if self._seq is not None:
            return self._seq.family
        return self._plan.spec.family if self._plan is not None else None

    @property
    def frame_shape(self) -> tuple:
        return tuple(self._plan.frame_shape) if self._plan is not None else ()

    @property
    def channels(self) -> int:
        return self.frame_shape[0] if self._plan is not None else 0

    @property
    def time_steps(self) -> int:
        """Latent frames per video latent (T of [C, T, H, W]); 1 for images."""
        shape = self.frame_shape
        return shape[1] if len(shape) == 4 else 1

    @property
    def is_video(self) -> bool:
        return len(self.frame_shape) == 4

    def has(self, step: int) -> bool:
        return 0 <= step < self.n_steps and self._chunk_of[step] >= 0

    def frame(self, step: int, item: int = 0) -> torch.Tensor:
        """Step ``step`` of batch item ``item``: a view ``[C, H, W]`` or ``[C, T, H, W]`` (of a sequence, made
        now when it is not cached: views call ``getter`` instead, off the GUI thread)."""
        if not self.has(step):
            raise IndexError(f"step {step} is not available ({self._available} of {self.n_steps} are in)")
        if not 0 <= item < self.batch:
            raise IndexError(f"item {item} is out of range: the batch has {self.batch}")
        if self._seq is not None:
            return self._seq.frame(step, item)
        if self._full is not None:
            return self._full[step * self.batch + item]
        start, _, rows = self._chunks[self._chunk_of[step]]
        return rows[(step - start) * self.batch + item]

    def position(self, step: int) -> int:
        """The node's step index of output step ``step`` (the same unless frames were selected)."""
        return int(self._positions[step])

    def schedule_step(self, step: int) -> int:
        """The schedule step (ComfyUI's sigma index, as the sigma plot's axis) of output step ``step``."""
        if self._seq is not None:
            return self._seq.schedule_step(step)
        return int(self._plan.schedule_index[int(self._positions[step])])

    def sigma(self, step: int) -> float:
        """Model-space sigma of a step, as ComfyUI prints it."""
        return float(self._sigmas[step])

    def raw_sigma(self, step: int) -> float:
        """The raw-space noise level, ``sigma / scale_factor`` (the node's sigma)."""
        return float(self._raw_sigmas[step])

    @property
    def positions(self) -> np.ndarray:
        return self._positions

    @property
    def sigmas(self) -> np.ndarray:
        """Model-space sigmas of every output step (float64 [n_steps])."""
        return self._sigmas

    @property
    def raw_sigmas(self) -> np.ndarray:
        return self._raw_sigmas

    @property
    def stats(self) -> StepStats:
        """Per-step, per-item mean/std/min/max (``core.stats.StepStats``), NaN where not yet computed."""
        return self._stats

    # -- threads --------------------------------------------------------------------------------

    def busy(self) -> bool:
        """True while statistics of this run are still being computed (or the sequence is being made)."""
        return (self._stats_pool.pending() or self._builder.pending() or self._seq_stats.pending()
                or self._stats_timer.isActive())

    def wait(self, msecs: int = -1) -> bool:
        """Wait for the statistics and sequence threads (their answers are then still to be delivered)."""
        return self._builder.wait(msecs) and self._stats_pool.wait(msecs) and self._seq_stats.wait(msecs)

    def shutdown(self) -> None:
        self._stats_timer.stop()
        self._plan_timer.stop()
        self._poll_timer.stop()
        self._builder.shutdown()
        self._seq_stats.shutdown()
        self._stats_pool.shutdown()
