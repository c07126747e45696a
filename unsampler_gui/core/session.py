"""The session: the inputs of a run and the last run, with no Qt.

It holds the latent, the model (the checkpoint's detection, when one was opened), the run parameters
(``RunParams``) and the last result with the inputs it was made from. The window and the command
line each drive one. It answers:

- **what would run**: ``spec()`` and its ``plan()``, planned once for the current inputs (the app plans
  off the GUI thread through ``plan_job()`` and ``take_plan()``; the CLI calls ``ensure_plan()``);
- **is the result current**: ``is_current()`` compares the frozen ``RunParams`` and the identity of the
  latent and the model the result was made from with the current ones;
- **what can be exported**: ``export_source()``.

It also keeps the run's lifecycle: the checks before a run (``begin_run``), its progress and ETA, its
result, and a run asked for while files are still being read (``run_pending``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from . import params as run_params
from .devices import available_memory, human_bytes
from .errors import BadParameterError, ResourceError, UnsamplerError
from .exports import ExportSource
from .families import Family, families_for_channels, get_family
from .sigmas import slice_bounds
from .unsample import Plan, UnsampleResult, plan_unsample


@dataclass(frozen=True, eq=False)
class Inputs:
    """What a run is made from. Two are equal when their parameters are equal and they hold the very same
    latent and model objects (a file opened again is a new input)."""

    params: run_params.RunParams
    latent: object
    model: object  # the detection in use, or None for a built-in family

    def __eq__(self, other) -> bool:
        return (isinstance(other, Inputs) and self.params == other.params and self.latent is other.latent
                and self.model is other.model)

    __hash__ = None


@dataclass(frozen=True)
class Estimate:
    """The output of the current inputs: its size, and the memory free when it was planned."""

    describe: str
    out_bytes: int
    n_frames: int
    available: Optional[int]


def fit_key(shape) -> str:
    """The key a remembered family choice is kept under: the latent's channel count and rank ("16ch-4d")."""
    return f"{int(shape[1])}ch-{len(shape)}d"


@dataclass(frozen=True)
class LatentFit:
    """Whether the chosen family takes the latent, and what the user can choose when it does not."""

    fits: bool
    family: str  # the chosen family's name
    choices: tuple  # the names of the families that take the latent (the remembered one first)
    remembered: Optional[str]  # the user's last choice for latents of this channel count, if any
    message: str  # one line, for beside the latent


def latent_fit(shape, family: Family, checkpoint: bool = False, remembered: Optional[str] = None) -> LatentFit:
    """Does ``family`` take a latent of ``shape``; which families do (``core.job.check_latent_for_family``
    is the same rule, at run time). ``checkpoint``: the family is an opened checkpoint's."""
    shape = tuple(shape)
    c, nd = int(shape[1]), len(shape)
    fits = [f for f in families_for_channels(c, nd)]
    names = [f.name for f in fits]
    if remembered in names:
        names.remove(remembered)
        names.insert(0, remembered)
    else:
        remembered = None
    ok = family.latent.channels == c and family.latent.ndim == nd
    if ok:
        msg = f"fits {family.display_name}"
    else:
        whose = f"the checkpoint's {family.display_name}" if checkpoint else family.display_name
        msg = (f"does not fit {whose}, which takes {family.latent.channels}-channel {family.latent.ndim}-D latents"
               + ("; these fit:" if names else f"; no known family takes {c}-channel {nd}-D latents"))
    return LatentFit(fits=ok, family=family.name, choices=tuple(names), remembered=remembered, message=msg)


def memory_warning(out_bytes: int, available: Optional[int], cap: int) -> str:
    """Why an in-memory run of ``out_bytes`` is a bad idea ("" when it fits)."""
    if available and out_bytes > 0.9 * available:
        return "too big for memory: export straight to a file instead"
    if cap and out_bytes > cap:
        return f"over the memory cap of {human_bytes(cap)}: export straight to a file, or raise the cap"
    return ""


#: The most bytes an in-memory run may hold when no memory cap is set: the frames are looked at through
#: the live sequence (``core.sequence``), which needs no run; a bigger output is exported to a file.
RUN_BUDGET = 1 << 30


def _out_bytes(spec) -> int:
    """The bytes of a spec's output, from its shape and step range alone (before it is planned)."""
    s, e = slice_bounds(spec.steps, spec.start_at_step, spec.end_at_step)
    n = len(spec.frames) if spec.frames is not None else max(0, e - s)
    return int(spec.latent.numel()) * spec.latent.element_size() * n


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Session:
    """The current inputs and the last run (see the module docstring)."""

    def __init__(self, params: Optional[run_params.RunParams] = None):
        self.params = params if params is not None else run_params.default()
        self.latent = None  # core.inputs.LoadedLatent
        self.model = None  # core.inputs.DetectedModel
        self.memory_cap = 0  # the largest in-memory run, in bytes (0: no cap)
        self.result: Optional[UnsampleResult] = None
        self.run_pending = False  # a run was asked for while files were being read
        #: the family the user chose last for latents of each channel count (``fit_key``): kept by the app
        self.family_choices: dict = {}
        self._result_inputs: Optional[Inputs] = None
        self._running: Optional[Inputs] = None
        self._t0 = 0.0
        self._first: Optional[tuple] = None  # (done, time) of a run's first progress report
        self._planned: Optional[Inputs] = None
        self._plan: Optional[Plan] = None
        self._plan_error = ""
        self._available: Optional[int] = None

    # -- inputs ---------------------------------------------------------------------------------------
    def set_params(self, params: run_params.RunParams) -> None:
        self.params = params

    def set_latent(self, latent) -> None:
        self.latent = latent

    def set_model(self, model) -> str:
        """Use a detected model: its family becomes the chosen one. Returns the status line."""
        self.model = model
        self.params = self.params.replace(family=model.family)
        return f"model: {self.base_family().display_name}"

    def open_latent(self, latent) -> str:
        """Use a latent the user opened. An Unsampler export brings its parameters back. The family never
        changes without a word: a latent the chosen family cannot take switches only to the user's last
        choice for that channel count, and says so; else the family stays and ``latent_fit`` offers the
        families that take it. Returns the status line."""
        self.latent = latent
        shape = tuple(latent.shape)
        fits = families_for_channels(shape[1], len(shape))
        u = latent.unsampler if isinstance(latent.unsampler, dict) else {}
        wanted = u.get("family")
        if isinstance(wanted, str) and any(f.name == wanted for f in fits):
            self.params = run_params.from_metadata(u, base=self.params)
            return (f"{latent.name} is an Unsampler export of {get_family(wanted).display_name}: "
                    "its parameters were restored")
        fit = self.latent_fit()
        if fit.fits:
            return f"opened {latent.name} {list(shape)}"
        if fit.remembered is not None and self.model_in_use() is None:
            before = self.base_family().display_name
            self.params = run_params.fit(self.params.replace(family=fit.remembered))
            return (f"opened {latent.name} {list(shape)}: {before} does not take it; switched to "
                    f"{get_family(fit.remembered).display_name}, your last choice for these latents")
        others = (f"; {len(fit.choices)} families take it" if len(fit.choices) != 1 else
                  f"; {get_family(fit.choices[0]).display_name} takes it") if fit.choices else ""
        return f"opened {latent.name} {list(shape)}: it {fit.message.split(';')[0]}{others}"

    def latent_fit(self) -> Optional[LatentFit]:
        """How the latent fits the chosen family (None without a latent)."""
        if self.latent is None:
            return None
        shape = tuple(self.latent.shape)
        return latent_fit(shape, self.base_family(), checkpoint=self.model_in_use() is not None,
                          remembered=self.family_choices.get(fit_key(shape)))

    def choose_family_for_latent(self, name: str) -> str:
        """The user chose ``name`` for the latent: use it and remember it for latents of this channel count
        (a checkpoint of another family is set aside). Returns the status line."""
        fam = get_family(name)
        if self.latent is not None:
            self.family_choices[fit_key(self.latent.shape)] = fam.name
        aside = self.model_in_use() is not None and self.model.family != fam.name
        self.params = run_params.fit(self.params.replace(family=fam.name))
        return f"model: {fam.display_name}" + (" (the checkpoint is set aside)" if aside else "")

    def model_in_use(self):
        """The opened model when the chosen family is its family (picking another family sets it aside)."""
        m = self.model
        return m if m is not None and m.family == self.params.family else None

    def base_family(self, name: Optional[str] = None) -> Family:
        """The family ``name`` (the chosen one by default): the model's detection when it is that family,
        else the built-in one."""
        name = self.params.family if name is None else name
        m = self.model
        if m is not None and m.family == name:
            fam = getattr(m.detection, "family_obj", None)
            if isinstance(fam, Family):
                return fam
        return get_family(name)

    def effective_family(self) -> Family:
        """The family with the overrides applied (``BadParameterError`` when they do not fit it)."""
        return run_params.effective_family(self.params, self.base_family())

    def model_source(self) -> str:
        """The checkpoint the user opened when it is in use, else the family name."""
        m = self.model_in_use()
        return m.source if m is not None else self.params.family

    def inputs(self) -> Inputs:
        return Inputs(self.params, self.latent, self.model_in_use())

    # -- what would run ---------------------------------------------------------------------------------
    def spec(self, **changes) -> run_params.RunSpec:
        """The frozen job description of the current inputs; ``UnsamplerError`` says what is missing."""
        lat = self.latent
        if lat is None:
            raise BadParameterError("no latent: open a .latent file first (or drop one on the window)")
        spec = run_params.make_spec(self.params, self.effective_family(), lat.tensor, source_name=lat.name,
                                    source_sha256=lat.sha256, model_source=self.model_source(),
                                    source_picture=getattr(lat, "picture", None))
        return spec.replace(**changes) if changes else spec

    def plan_job(self) -> Optional[Callable]:
        """The planning of the current inputs, to run off the GUI thread: a function that returns the
        arguments of ``take_plan``. None when there is nothing to plan (the reason is recorded at once)."""
        inputs = self.inputs()
        try:
            spec = self.spec()
        except UnsamplerError as e:
            self.take_plan(inputs, None, str(e))
            return None

        def job():
            try:
                return inputs, plan_unsample(spec), "", available_memory()
            except UnsamplerError as e:
                return inputs, None, str(e), None

        return job

    def take_plan(self, inputs: Inputs, plan: Optional[Plan], error: str = "", available: Optional[int] = None) -> bool:
        """Keep a plan (or why there is none) made for ``inputs``; False when the inputs have changed since."""
        if inputs != self.inputs():
            return False
        self._planned, self._plan, self._plan_error, self._available = inputs, plan, error, available
        return True

    def plan(self) -> Optional[Plan]:
        """The plan of the current inputs, when it has been made."""
        return self._plan if self._planned == self.inputs() else None

    def plan_error(self) -> str:
        """Why the current inputs cannot run ("" when they can, or while that is not known yet)."""
        return self._plan_error if self._planned == self.inputs() else ""

    def ensure_plan(self) -> Plan:
        """The plan of the current inputs, made now if it is not known (``BadParameterError`` if it fails)."""
        if self._planned != self.inputs():
            job = self.plan_job()
            if job is not None:
                self.take_plan(*job())
        if self.plan_error():
            raise BadParameterError(self.plan_error())
        return self._plan

    def estimate(self) -> Optional[Estimate]:
        """The output size of the current inputs (None while it is planned, or when they cannot run)."""
        plan = self.plan()
        if plan is None:
            return None
        return Estimate(describe=plan.describe(), out_bytes=plan.out_bytes, n_frames=len(plan.positions),
                        available=self._available)

    def memory_warning(self) -> str:
        est = self.estimate()
        return "" if est is None else memory_warning(est.out_bytes, est.available, self.memory_cap)

    # -- the run ----------------------------------------------------------------------------------------
    def begin_run(self) -> run_params.RunSpec:
        """Check that the current inputs can run in memory and return their spec (``UnsamplerError`` says
        why not). The last result is dropped: a run replaces it."""
        spec = self.spec()
        if self.plan_error():
            raise BadParameterError(self.plan_error())
        est, cap = self.estimate(), self.memory_cap
        out_bytes = est.out_bytes if est is not None else _out_bytes(spec)  # not planned yet: from the spec
        if cap and out_bytes > cap:
            raise ResourceError(f"the output needs {human_bytes(out_bytes)}, over the memory cap of "
                                f"{human_bytes(cap)} (Settings > Memory cap): export straight to a file instead, "
                                "or use fewer steps")
        if not cap and out_bytes > RUN_BUDGET:
            raise ResourceError(f"the output needs {human_bytes(out_bytes)}, over the in-memory budget of "
                                f"{human_bytes(RUN_BUDGET)}: every frame is shown without a run; export writes "
                                "them all to a file (or raise Settings > Memory cap)")
        self._running = self.inputs()
        self.result, self._result_inputs = None, None
        self.run_pending = False
        return spec

    def take_pending(self) -> bool:
        """True once when a run was asked for while files were being read."""
        pending, self.run_pending = self.run_pending, False
        return pending

    def run_started(self, now: float) -> None:
        self._t0, self._first = now, None

    def progress(self, done: int, total: int, now: float) -> tuple:
        """(the progress text, the ETA text) of a run ``done`` frames of ``total`` into it.

        The rate is measured from the run's first progress report, not from its start: the start (planning,
        allocating the output, the first frames waiting for the views) is paid once, and counting it in the rate
        made the early ETA run high (12 s shown at 15 % of a 9.6 s run)."""
        if self._first is None or done < self._first[0]:
            self._first = (done, now)
        d0, t0 = self._first
        eta = ""
        if 0 < done < total and now - self._t0 > 0.3 and done > d0 and now > t0:
            eta = f"ETA {duration((total - done) * (now - t0) / (done - d0))}"
        return f"{done}/{total} frames", eta

    def finish_run(self, result: UnsampleResult) -> str:
        """Keep a finished run's result with the inputs it was made from. Returns the status line."""
        self.result, self._result_inputs, self._running = result, self._running, None
        plan = result.plan
        n = len(plan.positions) * plan.batch
        return f"{n} latents {list(plan.out_shape)} in {result.seconds:.2f} s on {result.device}"

    def end_run(self) -> None:
        """A run failed or was cancelled: nothing of it is kept."""
        self._running = None

    def is_current(self) -> bool:
        """The last result was made from the current inputs."""
        return self.result is not None and self._result_inputs == self.inputs()

    def current_result(self) -> Optional[UnsampleResult]:
        return self.result if self.is_current() else None

    def is_stale(self) -> bool:
        """There is a result, but the inputs have changed since it was made."""
        return self.result is not None and not self.is_current()

    # -- exports ----------------------------------------------------------------------------------------
    def export_stem(self) -> str:
        """A file name for an export of the current inputs: latent, family, scheduler and frames."""
        lat = self.latent
        stem = os.path.splitext(lat.name)[0] if lat is not None else "unsampler"
        est = self.estimate()
        p = self.params
        return f"{stem}_{p.family}_{p.scheduler}_{est.n_frames if est else p.steps}"

    def export_source(self) -> ExportSource:
        """What an export can draw on now: the current result (if any), the spec and its plan."""
        try:
            spec, spec_error = self.spec(), ""
        except UnsamplerError as e:
            spec, spec_error = None, str(e)
        result = self.current_result()
        plan = result.plan if result is not None else self.plan()
        return ExportSource(result=result, spec=spec, spec_error=spec_error, plan=plan, stem=self.export_stem(),
                            max_memory=self.memory_cap or None)


__all__ = ["Session", "Inputs", "Estimate", "LatentFit", "latent_fit", "fit_key", "memory_warning", "duration",
           "RUN_BUDGET"]
