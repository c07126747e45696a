"""The model family registry: each family's model sampling and latent format, as data.

The built-in facts come from ComfyUI's own classes (see ``data/families.json`` and
``packaging/gen_family_data.py``); users add families as JSON files in the same format
(``family_format.py``, ``family_files.py``). Nothing here branches on a family name: a family is a
``Family`` value, and the code that uses it looks at its ``sampling.kind`` and latent fields.

A ``Registry`` is immutable. Loading user files builds a new one and swaps it in whole
(``use_registry``), so a bad file never leaves half of itself behind.

Name lookup (``Registry.get``), case-insensitive, with ``-``, ``_`` and spaces alike and dots ignored:

1. a family name;
2. a ComfyUI class name (``supported_models_class``): the family ComfyUI builds for that class when the state
   dict adds nothing (its ``model_type_without_state_dict`` and its own ``latent_format``). That is the family
   named as the class where there is one (``Flux2`` -> FLUX.2 dev, ``SDXL`` -> SDXL, ``SD20`` -> the EPS model);
   otherwise ``class_defaults`` of the data (``CogVideoX_T2V`` -> CogVideoX_2B, ``SeedVR2`` -> SeedVR2_3B);
   for a class only user families have, the first of them;
3. a display name.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Optional

from .errors import BadParameterError

#: ComfyUI ModelSampling classes, by our short name: ModelSamplingDiscrete, StableCascadeSampling,
#: ModelSamplingContinuousEDM, ModelSamplingDiscreteFlow, ModelSamplingFlux, ModelSamplingAV.
SAMPLING_KINDS = ("discrete", "stable_cascade", "edm", "flow", "flux", "flow_av")
#: Kinds whose ``shift`` is a parameter of the schedule (ComfyUI's ModelSamplingSD3/Flux/StableCascade nodes).
SHIFT_KINDS = ("flow", "flux", "stable_cascade", "flow_av")
#: Prediction types each kind can have in ComfyUI (the first is the default).
PREDICTIONS = {
    "discrete": ("EPS", "V_PREDICTION", "V_PREDICTION_DDPM"),
    "stable_cascade": ("EPS",),
    "edm": ("EDM", "V_PREDICTION", "EPS"),
    "flow": ("CONST",), "flux": ("CONST",), "flow_av": ("CONST",),
}
#: Predictions the ModelSampling* override nodes offer, per kind.
OVERRIDE_PREDICTIONS = {"discrete": ("EPS", "V_PREDICTION"), "stable_cascade": ("EPS", "V_PREDICTION"),
                        "edm": ("EDM", "V_PREDICTION", "EPS")}
#: Prediction types whose noise_scaling is ``sigma*(noise_scale*noise) + (1-sigma)*x`` (rectified flow, CONST).
FLOW_PREDICTIONS = ("CONST",)
#: Prediction types that noise as ``x + sigma*noise`` (EPS, V_PREDICTION, EDM and CogVideoX's V_PREDICTION_DDPM).
ADDITIVE_PREDICTIONS = ("EPS", "V_PREDICTION", "EDM", "V_PREDICTION_DDPM")
BUILTIN = "built-in"


@dataclass(frozen=True)
class Sampling:
    """A ModelSampling object's parameters (what ComfyUI builds in ``model_base.model_sampling``)."""

    kind: str
    prediction: str
    num_timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012
    zsnr: bool = False
    sigma_data: float = 1.0
    shift: float = 1.0
    multiplier: float = 1000
    edm_sigma_min: float = 0.002  # EDM construction parameters (ComfyUI's sampling_settings)
    edm_sigma_max: float = 120.0
    noise_scale: float = 1.0  # ModelSamplingDiscreteFlow.noise_scale, read by CONST.noise_scaling
    audio_shift: Optional[float] = None  # ModelSamplingAV: the audio stream's shift (the table is the video's)
    table_sha256: Optional[str] = None  # sha256 of ComfyUI's float32 sigma table, to verify ours

    @property
    def is_flow(self) -> bool:
        return self.prediction in FLOW_PREDICTIONS

    @property
    def has_shift(self) -> bool:
        return self.kind in SHIFT_KINDS


@dataclass(frozen=True)
class LatentFormat:
    """A ComfyUI LatentFormat: how raw VAE latents map to model space, and how they are previewed."""

    name: str
    channels: int
    dimensions: int
    scale_factor: float
    shift_factor: Optional[float] = None
    latents_mean: Optional[tuple] = None
    latents_std: Optional[tuple] = None
    rgb_factors: Optional[tuple] = None  # latent_rgb_factors: [rows][3]
    rgb_factors_bias: Optional[tuple] = None
    rgb_factors_reshape: Optional[Mapping] = dataclasses.field(default=None, compare=False, hash=False)
    taesd_decoder_name: Optional[str] = None
    spacial_downscale_ratio: int = 8
    temporal_downscale_ratio: int = 1
    process_formula: str = ""

    @property
    def ndim(self) -> int:
        """Number of dimensions of a batch tensor: 4 for images, 5 for video."""
        return 2 + self.dimensions


@dataclass(frozen=True)
class Family:
    name: str
    display_name: str
    comfy_class: str
    model_type: str
    sampling: Sampling
    latent: LatentFormat
    detection: dict = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)
    note: str = dataclasses.field(default="", compare=False)
    source: str = dataclasses.field(default=BUILTIN, compare=False)  # "built-in" or the user file it came from
    reference: dict = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def builtin(self) -> bool:
        return self.source == BUILTIN

    def with_overrides(self, shift: Optional[float] = None, prediction: Optional[str] = None) -> "Family":
        """Apply the overrides of ComfyUI's ModelSampling* nodes (shift, prediction type)."""
        s = self.sampling
        changes = {}
        if shift is not None and float(shift) != s.shift:
            if not s.has_shift:
                raise BadParameterError(f"{self.name} ({s.kind} sampling) has no shift to override")
            if not shift > 0:
                raise BadParameterError(f"shift must be > 0, got {shift}")
            changes["shift"] = float(shift)
            changes["table_sha256"] = None
        if prediction is not None and prediction.upper() != s.prediction:
            p = prediction.upper()
            allowed = OVERRIDE_PREDICTIONS.get(s.kind, ("CONST",))
            if p not in allowed:
                raise BadParameterError(
                    f"prediction {prediction!r} does not fit {s.kind} sampling; choose one of {', '.join(allowed)}")
            changes["prediction"] = p
        if not changes:
            return self
        return dataclasses.replace(self, sampling=dataclasses.replace(s, **changes))


def name_key(name: str) -> str:
    """The form names are compared in: lower case, ``-``/``_``/space alike, dots dropped."""
    return name.strip().lower().replace("-", "_").replace(" ", "_").replace(".", "")


class Registry:
    """An immutable set of families (built-in first, then the user's), with ComfyUI's class defaults.

    ``problems`` holds one message per user file that was skipped (the file and the field named).
    """

    def __init__(self, families: Iterable[Family], class_defaults: Optional[Mapping] = None,
                 problems: Iterable[str] = ()):
        fams = tuple(families)
        by_key = {}
        for f in fams:
            k = name_key(f.name)
            if k in by_key:
                raise ValueError(f"two families named {by_key[k].name!r} and {f.name!r}")
            by_key[k] = f
        self._families = fams
        self._by_key = MappingProxyType(by_key)
        self._class_defaults = MappingProxyType(dict(class_defaults or {}))
        self._class_keys = MappingProxyType({name_key(c): n for c, n in self._class_defaults.items()})
        self.problems = tuple(problems)

    @property
    def class_defaults(self) -> Mapping:
        return self._class_defaults

    def __iter__(self):
        return iter(self._families)

    def __len__(self) -> int:
        return len(self._families)

    def names(self) -> list:
        return [f.name for f in self._families]

    def find(self, name: str) -> Optional[Family]:
        """The family a name, a ComfyUI class name or a display name stands for, or None (see the module doc)."""
        key = name_key(name)
        if key in self._by_key:
            return self._by_key[key]
        if key in self._class_keys:
            return self._by_key[name_key(self._class_keys[key])]
        for f in self._families:
            if f.comfy_class and name_key(f.comfy_class) == key:
                return f
        for f in self._families:
            if name_key(f.display_name) == key:
                return f
        return None

    def get(self, name) -> Family:
        """Look a family up by name (see ``find``). A ``Family`` passes through unchanged."""
        if isinstance(name, Family):
            return name
        if not isinstance(name, str):
            raise BadParameterError(f"family must be a name, got {type(name).__name__}")
        fam = self.find(name)
        if fam is None:
            skipped = f" (skipped: {'; '.join(self.problems)})" if self.problems else ""
            raise BadParameterError(f"unknown model family {name!r}; known families: {', '.join(self.names())}"
                                    + skipped)
        return fam

    def with_families(self, extra: Iterable[Family], problems: Iterable[str] = ()) -> "Registry":
        """A new registry: these families added after the present ones (the present one is unchanged)."""
        return Registry(self._families + tuple(extra), self._class_defaults, self.problems + tuple(problems))


_builtin: Optional[Registry] = None
_current: Optional[Registry] = None


def builtin_registry() -> Registry:
    """The built-in families (``data/families.json``), built once."""
    global _builtin
    if _builtin is None:
        from .family_format import load_builtin

        fams, class_defaults = load_builtin()
        _builtin = Registry(fams, class_defaults)
    return _builtin


def registry() -> Registry:
    """The registry in use: the built-in one unless ``use_registry`` installed another."""
    return _current if _current is not None else builtin_registry()


def use_registry(reg: Optional[Registry]) -> Registry:
    """Install a registry (None: back to the built-in one); returns the previous one."""
    global _current
    previous = registry()
    if reg is not None and not isinstance(reg, Registry):
        raise TypeError("use_registry takes a Registry")
    _current = reg
    return previous


def family_names() -> list:
    """All family names, in the registry's order (the built-in ones as ComfyUI's detected families, then users')."""
    return registry().names()


def all_families() -> list:
    return list(registry())


def get_family(name) -> Family:
    """Look a family up by name, ComfyUI class name or display name, case-insensitively (see the module doc)."""
    return registry().get(name)


def families_for_channels(channels: int, ndim: Optional[int] = None) -> list:
    """Families whose latent format has this many channels (and, if given, this tensor rank)."""
    return [f for f in all_families()
            if f.latent.channels == channels and (ndim is None or f.latent.ndim == ndim)]
