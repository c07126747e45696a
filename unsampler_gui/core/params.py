"""Every run parameter, once: ``RunParams``.

``RunParams`` is the frozen, comparable record of what the user chooses for a run: the BatchUnsampler
node's inputs (family, sampler, scheduler, steps, start and end, normalize), Unsampler's own seed,
noise, formula and device, and ComfyUI's ModelSampling* overrides (shift, prediction). Each field
carries a ``Param``: its label, range, choices (read from the registries: families, samplers,
schedulers, noise modes, formulas, devices), help, and where it goes. Everything else is made from
these fields, never listed again:

- the form's rows (``qt/param_panel.py`` builds one row per field, in its ``section``);
- ``to_dict`` / ``from_dict``: the panel's ``params()`` and ``set_params``, and the settings;
- ``metadata`` / ``from_metadata``: the ``unsampler`` JSON of an export (through ``RunSpec``), and what
  opening an export restores;
- ``add_cli_options`` / ``from_cli``: the command line's options, with their defaults.

A new run parameter is one more field here. When the engine needs it too, mark it ``spec=True`` and
give ``UnsampleSpec`` the field of the same name.

The module-level functions read ``RunParams`` when they are called, so that a test can put a
``RunParams`` with one more field in its place and find that field everywhere.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .devices import DEVICES, cuda_available
from .errors import BadParameterError, UnsamplerError
from .families import Family, family_names, get_family
from .formulas import FORMULAS
from .samplers import sampler_names
from .schedulers import SCHEDULERS
from .sigmas import MAX_STEPS
from .unsample import NOISE_MODES, UnsampleSpec

#: The command line's commands that take run parameters (``Param.commands``).
SIGMAS, RUN, EXPORT, INFO = "sigmas", "run", "export", "info"
SCHEDULE_COMMANDS = (SIGMAS, RUN, EXPORT)
JOB_COMMANDS = (RUN, EXPORT)
MODEL_COMMANDS = (SIGMAS, RUN, EXPORT, INFO)
#: The form's sections (group boxes), in their order.
SECTIONS = ("model", "unsampling", "advanced")
MAX_SEED = 2 ** 31 - 1
#: ComfyUI's ModelSampling* prediction choices, by sampling kind (what ``Family.with_overrides`` accepts).
PREDICTIONS_BY_KIND = {"discrete": ("EPS", "V_PREDICTION"), "stable_cascade": ("EPS", "V_PREDICTION"),
                       "edm": ("EDM", "V_PREDICTION", "EPS"), "flow": ("CONST",), "flux": ("CONST",)}
DEVICE_LABELS = {"auto": "Auto", "cpu": "CPU", "cuda": "CUDA"}


@dataclass(frozen=True)
class Param:
    """What one ``RunParams`` field is: everything the form, the CLI, the settings and the exports need.

    ``choices`` lists the values from a registry; ``choices_for(family)`` lists those that fit a family
    (the prediction types of its sampling kind). ``applies(family)`` says whether the field means
    anything for a family (only flow families have a shift). A field whose default is None is optional:
    None stands for ``fallback(family)``, the family's own value.
    """

    label: str
    help: str = ""
    type: Optional[type] = None  # taken from the default when it is not None
    range: Optional[tuple] = None  # (lowest, highest), both allowed
    step: float = 1
    decimals: int = 0
    choices: Optional[Callable[[], Sequence]] = None
    choices_for: Optional[Callable[[Family], Sequence]] = None
    choice_label: Optional[Callable[[Any], str]] = None
    choice_help: Optional[Callable[[Any], str]] = None
    choice_available: Optional[Callable[[Any], bool]] = None  # False: shown, but cannot be chosen here
    applies: Optional[Callable[[Family], bool]] = None
    fallback: Optional[Callable[[Family], Any]] = None
    section: str = "unsampling"
    cli: str = ""  # the option, "--" + the name with dashes when empty
    cli_dest: str = ""  # the argparse attribute, the name when empty
    cli_help: str = ""  # the option's help when it differs from the form's
    cli_required: bool = False
    cli_choices: bool = True  # False: the core checks the value (and names the choices in its message)
    commands: tuple = JOB_COMMANDS
    spec: bool = False  # the engine takes it: passed to ``UnsampleSpec`` as the field of the same name
    meta: bool = True  # written into the export metadata
    restore: bool = True  # opening an export puts it back into the form
    name: str = ""  # filled in by ``fields()``
    default: Any = None  # filled in by ``fields()``

    @property
    def optional(self) -> bool:
        return self.default is None

    @property
    def flag(self) -> str:
        return self.cli or "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return self.cli_dest or self.name

    def options(self, family: Optional[Family] = None) -> tuple:
        """The values this parameter may take (for ``family`` when given), or () when any value of its type."""
        if self.choices is not None:
            return tuple(self.choices())
        if self.choices_for is not None and family is not None:
            return tuple(self.choices_for(family))
        return ()

    def label_of(self, value) -> str:
        return self.choice_label(value) if self.choice_label is not None else str(value)

    def check(self, value, family: Optional[Family] = None):
        """``value`` as this parameter's type, or ``BadParameterError`` with a message that names it."""
        if value is None and self.optional:
            return None
        t = self.type
        ok = True
        if t is bool:
            ok = isinstance(value, bool)
        elif t is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif t is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif t is str:
            ok = isinstance(value, str)
        if not ok:
            raise BadParameterError(f"{self.name} must be {_TYPE_WORDS.get(t, t.__name__)}, got {value!r}")
        if self.range is not None:
            lo, hi = self.range
            if not lo <= value <= hi:
                raise BadParameterError(f"{self.name} must be between {lo} and {hi}, got {value!r}")
        allowed = self.options(family)
        if allowed and value not in allowed:
            raise BadParameterError(f"unknown {self.label.lower()} {value!r}; choose one of: {', '.join(allowed)}")
        return value


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a name"}


def param(default, label: str, **meta) -> Any:
    """A ``RunParams`` field: its default and its ``Param``."""
    return field(default=default, metadata={"param": Param(label=label, **meta)})


def _family_label(name: str) -> str:
    fam = get_family(name)
    return fam.display_name + ("" if fam.builtin else " (yours)")


def _family_help(name: str) -> str:
    fam = get_family(name)
    return (f"{fam.name}: {fam.comfy_class}, {fam.sampling.kind} sampling, {fam.sampling.prediction}, "
            f"{fam.latent.channels} channels, {fam.latent.ndim}-D, scale_factor {fam.latent.scale_factor:g}")


def has_shift(family: Family) -> bool:
    """Only these sampling kinds have a shift to override (ComfyUI's ModelSamplingSD3/Flux/StableCascade)."""
    return family.sampling.has_shift


def predictions(family: Family) -> tuple:
    """The prediction types ComfyUI's ModelSampling* nodes offer for this family's sampling kind."""
    choices = PREDICTIONS_BY_KIND.get(family.sampling.kind, ())
    own = family.sampling.prediction  # first where the nodes lack it (CogVideoX's V_PREDICTION_DDPM)
    return ((own,) if own not in choices else ()) + tuple(choices)


@dataclass(frozen=True)
class RunParams:
    """What the user chose for a run: frozen and comparable (two runs with equal ``RunParams`` and the
    same inputs make the same frames). Field order is the form's row order."""

    family: str = param(
        "SD15", "Family", section="model", choices=family_names, choice_label=_family_label,
        choice_help=_family_help, help="Built-in model family (no weights needed)", cli="--model", cli_dest="model",
        cli_required=True, cli_choices=False, commands=SCHEDULE_COMMANDS,
        cli_help="a family name (see 'unsampler families'), a checkpoint file or a diffusers folder")
    sampler: str = param(
        "euler", "Sampler", choices=sampler_names, cli_choices=False, spec=True, commands=SCHEDULE_COMMANDS,
        help="ComfyUI's sampler name: dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2 compute steps+1 sigmas and "
             "drop the penultimate one; the rest share a schedule")
    scheduler: str = param(
        "simple", "Scheduler", choices=lambda: tuple(SCHEDULERS), choice_help=lambda n: SCHEDULERS[n].description,
        cli_choices=False, spec=True, commands=SCHEDULE_COMMANDS,
        help="ComfyUI's scheduler: how the steps' sigmas are spaced")
    steps: int = param(10000, "Steps", range=(1, MAX_STEPS), spec=True, commands=SCHEDULE_COMMANDS,
                       help="KSampler steps (the node's default is 10000)")
    start_at_step: int = param(0, "Start at step", range=(0, MAX_STEPS), cli="--start", spec=True,
                               commands=SCHEDULE_COMMANDS,
                               help="start_at_step: the node uses schedule[min(start, e):e]")
    end_at_step: int = param(10000, "End at step", range=(0, MAX_STEPS), cli="--end", spec=True,
                             commands=SCHEDULE_COMMANDS, help="end_at_step: e = min(steps, end)")
    normalize: bool = param(False, "Normalize", spec=True,
                            help="Subtract the mean of the first output latent from every latent (the node's option)")
    seed: int = param(0, "Seed", range=(0, MAX_SEED), spec=True,
                      help="Same seed and settings give bit-identical output")
    noise: str = param(
        "independent", "Noise", choices=lambda: NOISE_MODES, spec=True,
        help="independent: fresh noise per step (the node); shared: one noise for all steps; "
             "trajectory: one forward-diffusion path with exact marginals")
    formula: str = param(
        "model", "Formula", choices=lambda: FORMULAS, spec=True,
        help="model: ComfyUI's own noising (AddNoise), right for flow models too; "
             "legacy: the node's x + sigma/scale_factor·eps")
    device: str = param(
        "auto", "Device", choices=lambda: DEVICES, choice_label=lambda d: DEVICE_LABELS.get(d, d),
        choice_available=lambda d: d != "cuda" or cuda_available(), spec=True, meta=False, restore=False,
        help="Where the frames are made: auto uses CUDA when there is one")
    shift: Optional[float] = param(
        None, "Shift", type=float, range=(0.01, 100.0), step=0.1, decimals=3, section="advanced", applies=has_shift,
        fallback=lambda fam: fam.sampling.shift, commands=MODEL_COMMANDS, meta=False, restore=False,
        help="Override the model's shift (flow models; ComfyUI's ModelSamplingSD3/Flux)")
    prediction: Optional[str] = param(
        None, "Prediction", type=str, section="advanced", choices_for=predictions,
        fallback=lambda fam: fam.sampling.prediction, cli_choices=False, commands=MODEL_COMMANDS, meta=False,
        restore=False, help="Override the prediction type (EPS, V_PREDICTION, ...; ComfyUI's ModelSampling*)")

    def replace(self, **changes) -> "RunParams":
        return dataclasses.replace(self, **changes)


# -- the fields ------------------------------------------------------------------------------------------
def fields() -> list:
    """Every run parameter's ``Param``, in field order, with its name and default filled in."""
    out = []
    for f in dataclasses.fields(RunParams):
        p = f.metadata["param"]
        t = p.type or type(f.default)
        out.append(dataclasses.replace(p, name=f.name, default=f.default, type=t))
    return out


def get(name: str) -> Param:
    for p in fields():
        if p.name == name:
            return p
    raise KeyError(name)


def default() -> RunParams:
    return RunParams()


def family_of(params: RunParams) -> Optional[Family]:
    try:
        return get_family(params.family)
    except UnsamplerError:
        return None


def fit(params: RunParams, family: Optional[Family] = None) -> RunParams:
    """Drop the optional values that do not fit the family (a shift for SD1.5, CONST for SDXL)."""
    fam = family if family is not None else family_of(params)
    if fam is None:
        return params
    changes = {}
    for p in fields():
        v = getattr(params, p.name)
        if v is None or not p.optional:
            continue
        if (p.applies is not None and not p.applies(fam)) or (p.choices_for is not None and v not in p.choices_for(fam)):
            changes[p.name] = None
    return params.replace(**changes) if changes else params


# -- dicts: params(), restore, settings --------------------------------------------------------------------
def to_dict(params: RunParams) -> dict:
    """Every value, as plain JSON (the panel's ``params()``, the settings)."""
    return {p.name: getattr(params, p.name) for p in fields()}


def from_dict(values, base: Optional[RunParams] = None, skip: Sequence[str] = ()) -> RunParams:
    """``base`` (the defaults when None) with the valid values of ``values``; unknown keys and values that
    are not valid are left out, so nothing from a file can put the form into a state it cannot show."""
    base = base if base is not None else default()
    if not isinstance(values, dict):
        return base
    if values.get("overrides") is False:  # settings saved before RunParams kept the override box apart
        values = {k: v for k, v in values.items() if k not in ("shift", "prediction")}
    changes = {}
    for p in fields():
        if p.name in values and p.name not in skip:
            try:
                changes[p.name] = p.check(values[p.name])
            except UnsamplerError:
                continue
    return fit(base.replace(**changes))


# -- exports: metadata and restore ---------------------------------------------------------------------
def metadata(params: RunParams) -> dict:
    """The values an export's ``unsampler`` JSON holds (``restore`` ones are put back on opening it)."""
    return {p.name: getattr(params, p.name) for p in fields() if p.meta}


def from_metadata(doc, base: Optional[RunParams] = None, skip: Sequence[str] = ()) -> RunParams:
    """What opening an export puts back: its ``restore`` values over ``base``. Old exports (written before
    RunParams) have the same keys, so they restore too."""
    if not isinstance(doc, dict):
        return base if base is not None else default()
    return from_dict({p.name: doc[p.name] for p in fields() if p.restore and p.name in doc}, base, skip)


def spec_values(params: RunParams) -> dict:
    """The ``UnsampleSpec`` keyword arguments these parameters give (the family object is the caller's)."""
    return {p.name: getattr(params, p.name) for p in fields() if p.spec}


@dataclass(frozen=True, eq=False)
class RunSpec(UnsampleSpec):
    """An ``UnsampleSpec`` made from ``RunParams``: its export metadata holds every ``meta`` parameter.

    The engine's own values win where both have a key (they are what ran); ``run_params`` adds the
    parameters the engine does not take. ``UnsampleSpec.replace`` keeps the class, so the plan, the
    result and every export written from them carry it.
    """

    run_params: Optional[RunParams] = None

    def params(self) -> dict:
        out = super().params()
        if self.run_params is not None:
            for k, v in metadata(self.run_params).items():
                out.setdefault(k, v)
        return out


def make_spec(params: RunParams, family: Family, latent, **inputs) -> RunSpec:
    """The job description for these parameters: ``family`` is the effective family (detection and
    overrides applied), ``latent`` the float32 tensor, ``inputs`` the source names and tuning fields."""
    return RunSpec(family=family, latent=latent, run_params=params, **spec_values(params), **inputs)


def effective_family(params: RunParams, base: Family) -> Family:
    """``base`` with the shift and prediction overrides applied, as ComfyUI's ModelSampling* nodes do
    (``core.detect.resolve_model``'s rules: prediction words such as "eps" or "v" are understood)."""
    if params.shift is None and params.prediction is None:
        return base
    from .detect import resolve_model

    return resolve_model(base, shift=params.shift, prediction=params.prediction).family_obj


# -- the command line ------------------------------------------------------------------------------------
def add_cli_options(parser, command: str) -> None:
    """Add the options of the parameters ``command`` takes, with their defaults and help."""
    for p in fields():
        if command not in p.commands:
            continue
        kw: dict = {"dest": p.dest, "help": p.cli_help or p.help or p.label}
        if p.type is bool:
            kw["action"] = "store_false" if p.default else "store_true"
        else:
            kw["type"] = p.type
            kw["default"] = p.default
            if p.cli_required:
                kw["required"] = True
                kw.pop("default")
            elif p.default is not None:
                kw["help"] += " (default %(default)s)"
            if p.cli_choices and p.choices is not None:
                kw["choices"] = tuple(p.choices())
        parser.add_argument(p.flag, **kw)


def from_cli(args, command: str, skip: Sequence[str] = ()) -> RunParams:
    """``RunParams`` from parsed options; a value out of range is a ``BadParameterError`` that names it.
    Sampler and scheduler names are checked by the core, whose messages list ComfyUI's names."""
    changes = {}
    for p in fields():
        if command not in p.commands or p.name in skip or not hasattr(args, p.dest):
            continue
        value = getattr(args, p.dest)
        changes[p.name] = p.check(value) if (p.cli_choices or p.range is not None) else value
    return default().replace(**changes)


__all__ = ["RunParams", "Param", "RunSpec", "param", "fields", "get", "default", "fit", "to_dict", "from_dict",
           "metadata", "from_metadata", "spec_values", "make_spec", "effective_family", "add_cli_options",
           "from_cli", "family_of", "has_shift", "predictions", "SECTIONS", "MAX_SEED"]
