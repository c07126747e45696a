"""The model family registry: each family's model sampling and latent format, as data.

The facts come from ComfyUI's own classes (see ``data/families.json`` and
``packaging/gen_family_data.py``). Nothing here branches on a family name: a family is a
``Family`` value, and the code that uses it looks at its ``sampling.kind`` and latent fields.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Optional

from .errors import BadParameterError

#: ComfyUI ModelSampling classes, by our short name.
SAMPLING_KINDS = ("discrete", "stable_cascade", "edm", "flow", "flux")
#: Prediction types whose noise_scaling is ``sigma*noise + (1-sigma)*x`` (rectified flow).
FLOW_PREDICTIONS = ("CONST",)
#: Prediction types that noise as ``x + sigma*noise``.
ADDITIVE_PREDICTIONS = ("EPS", "V_PREDICTION", "EDM")


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
    table_sha256: Optional[str] = None  # sha256 of ComfyUI's float32 sigma table, to verify ours

    @property
    def is_flow(self) -> bool:
        return self.prediction in FLOW_PREDICTIONS


@dataclass(frozen=True)
class LatentFormat:
    """A ComfyUI LatentFormat: how raw VAE latents map to model space."""

    name: str
    channels: int
    dimensions: int
    scale_factor: float
    shift_factor: Optional[float] = None
    latents_mean: Optional[tuple] = None
    latents_std: Optional[tuple] = None
    rgb_factors: Optional[tuple] = None  # [channels][3]
    rgb_factors_bias: Optional[tuple] = None
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

    def with_overrides(self, shift: Optional[float] = None, prediction: Optional[str] = None) -> "Family":
        """Apply the overrides of ComfyUI's ModelSampling* nodes (shift, prediction type)."""
        s = self.sampling
        changes = {}
        if shift is not None and float(shift) != s.shift:
            if s.kind not in ("flow", "flux", "stable_cascade"):
                raise BadParameterError(f"{self.name} ({s.kind} sampling) has no shift to override")
            if not shift > 0:
                raise BadParameterError(f"shift must be > 0, got {shift}")
            changes["shift"] = float(shift)
            changes["table_sha256"] = None
        if prediction is not None and prediction.upper() != s.prediction:
            p = prediction.upper()
            allowed = ("EPS", "V_PREDICTION") if s.kind in ("discrete", "stable_cascade") else (
                ("EDM", "V_PREDICTION", "EPS") if s.kind == "edm" else ("CONST",))
            if p not in allowed:
                raise BadParameterError(
                    f"prediction {prediction!r} does not fit {s.kind} sampling; choose one of {', '.join(allowed)}")
            changes["prediction"] = p
        if not changes:
            return self
        return dataclasses.replace(self, sampling=dataclasses.replace(s, **changes))


def _tuple(x):
    if x is None:
        return None
    return tuple(_tuple(v) if isinstance(v, list) else v for v in x)


def _load_json(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("data").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _registry() -> dict:
    data = _load_json("families.json")
    fams = {}
    for name, e in data["families"].items():
        s = e["sampling"]
        lat = e["latent"]
        sampling = Sampling(
            kind=s["kind"], prediction=s["prediction"],
            num_timesteps=s.get("num_timesteps", 1000 if s["kind"] != "flux" else 10000),
            linear_start=s.get("linear_start", 0.00085), linear_end=s.get("linear_end", 0.012),
            zsnr=s.get("zsnr", False), sigma_data=s.get("sigma_data", 1.0), shift=s.get("shift", 1.0),
            multiplier=s.get("multiplier", 1000),
            edm_sigma_min=s["settings"].get("sigma_min", 0.002), edm_sigma_max=s["settings"].get("sigma_max", 120.0),
            table_sha256=s.get("sigmas_sha256_f32le"),
        )
        latent = LatentFormat(
            name=lat["format"], channels=lat["channels"], dimensions=lat["dimensions"],
            scale_factor=lat["scale_factor"], shift_factor=lat["shift_factor"],
            latents_mean=_tuple(lat["latents_mean"]), latents_std=_tuple(lat["latents_std"]),
            rgb_factors=_tuple(lat["rgb_factors"]), rgb_factors_bias=_tuple(lat["rgb_factors_bias"]),
            process_formula=lat["process_formula"],
        )
        fams[name] = Family(name=name, display_name=e["display_name"], comfy_class=e["comfy_class"],
                            model_type=e["model_type"], sampling=sampling, latent=latent, detection=e["detection"])
    return fams


def family_names() -> list:
    """All family names, in the registry's order (ComfyUI's detected families)."""
    return list(_registry())


def all_families() -> list:
    return list(_registry().values())


def get_family(name) -> Family:
    """Look a family up by name, case-insensitively. A ``Family`` passes through unchanged."""
    if isinstance(name, Family):
        return name
    reg = _registry()
    if not isinstance(name, str):
        raise BadParameterError(f"family must be a name, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_").replace(".", "")
    for fname, fam in reg.items():
        if fname.lower() == key or fam.display_name.lower().replace(" ", "_").replace(".", "").replace("-", "_") == key:
            return fam
    raise BadParameterError(f"unknown model family {name!r}; known families: {', '.join(reg)}")


def families_for_channels(channels: int, ndim: Optional[int] = None) -> list:
    """Families whose latent format has this many channels (and, if given, this tensor rank)."""
    return [f for f in all_families()
            if f.latent.channels == channels and (ndim is None or f.latent.ndim == ndim)]
