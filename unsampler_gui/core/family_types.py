"""A model family's values: its ComfyUI ModelSampling parameters, its LatentFormat and the family itself.

Frozen dataclasses, compared by value: two families with the same ``Sampling`` share one sigma table
(``model_sampling`` caches by it). The registry that holds them is ``families.py``; their JSON form is
``family_format.py``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional

from .errors import BadParameterError
from .overrides import check_shift

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
    process_formula: str = dataclasses.field(default="", compare=False)  # ComfyUI's process_in/out, in words

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
            changes["shift"] = check_shift(shift, s.kind)  # ComfyUI's node range; a Flux shift overflows sooner
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
