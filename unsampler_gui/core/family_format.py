"""The family definition format: one model family as JSON, for the built-in data and for users' files.

A definition is an object (``unsampler families --json`` prints every family in it)::

    {
      "name": "MyFlux",                      required; letters, digits, _ . + -; not a family already
      "display_name": "My Flux finetune",    optional (default: the name)
      "comfy_class": "Flux",                 optional: the ComfyUI supported_models class (informational)
      "model_type": "FLUX",                  optional: ComfyUI's ModelType (default from kind and prediction)
      "note": "...",                         optional
      "sampling": {                          required
        "kind": "flux",                      discrete | edm | stable_cascade | flow | flux | flow_av
        "prediction": "CONST",               optional, default the kind's first (see PREDICTIONS)
        ...the kind's parameters (KIND_PARAMS), each optional with ComfyUI's default
      },
      "latent": {                            required
        "channels": 16,                      required
        "dimensions": 2,                     2 (images) or 3 (video); default 2
        "scale_factor": 0.3611,              default 1.0
        "shift_factor": 0.1159,              optional; or per channel:
        "latents_mean": [...], "latents_std": [...],
        "format", "latent_rgb_factors", "latent_rgb_factors_bias", "latent_rgb_factors_reshape",
        "taesd_decoder_name", "spacial_downscale_ratio", "temporal_downscale_ratio", "process_formula"
      },
      "detection": {...},                    optional: "minimal_keys" [{"key", "shape"}], "safetensors_metadata", ...
      "reference": {...}                     optional facts: "sigmas_sha256_f32le" of ComfyUI's float32 table, ...
    }

Every field is checked; an unknown field is an error (a misspelt ``"shfit"`` must not silently mean shift 1).
Errors name the field: ``FamilyDefinitionError("sampling.shift: must be a number > 0, got -1")``.
"""
from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any, Optional

from .errors import BadFileError
from .family_types import BUILTIN, PREDICTIONS, SAMPLING_KINDS, Family, LatentFormat, Sampling

FORMAT = "unsampler-family/1"

#: The parameters of each sampling kind, by ComfyUI's ``sampling_settings`` names, with ComfyUI's defaults.
KIND_PARAMS = {
    "discrete": {"num_timesteps": 1000, "linear_start": 0.00085, "linear_end": 0.012, "zsnr": False},
    "edm": {"sigma_min": 0.002, "sigma_max": 120.0, "sigma_data": 1.0},
    "stable_cascade": {"shift": 1.0},
    "flow": {"shift": 1.0, "multiplier": 1000.0, "noise_scale": 1.0},
    "flow_av": {"shift": 1.0, "multiplier": 1000.0, "noise_scale": 1.0, "audio_shift": None},
    "flux": {"shift": 1.15},
}
#: Our Sampling field for each definition parameter where the names differ.
_SAMPLING_FIELD = {"sigma_min": "edm_sigma_min", "sigma_max": "edm_sigma_max"}
#: ComfyUI's ModelType for a kind and prediction (what ``model_type`` defaults to).
_MODEL_TYPE = {("discrete", "EPS"): "EPS", ("discrete", "V_PREDICTION"): "V_PREDICTION",
               ("discrete", "V_PREDICTION_DDPM"): "V_PREDICTION_DDPM", ("edm", "EDM"): "EDM",
               ("edm", "V_PREDICTION"): "V_PREDICTION_EDM", ("edm", "EPS"): "EPS",
               ("stable_cascade", "EPS"): "STABLE_CASCADE", ("flow", "CONST"): "FLOW", ("flux", "CONST"): "FLUX",
               ("flow_av", "CONST"): "FLOW_AV"}
_TOP = ("name", "display_name", "comfy_class", "model_type", "note", "sampling", "latent", "detection", "reference")
_LATENT = ("format", "channels", "dimensions", "scale_factor", "shift_factor", "latents_mean", "latents_std",
           "latent_rgb_factors", "latent_rgb_factors_bias", "latent_rgb_factors_reshape", "taesd_decoder_name",
           "spacial_downscale_ratio", "temporal_downscale_ratio", "process_formula")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_CHANNELS = 4096


class FamilyDefinitionError(BadFileError):
    """A family definition with a missing, unknown or out-of-range field (the message names it)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _fail(field: str, problem: str):
    raise FamilyDefinitionError(field, problem)


def _show(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _object(v, field: str) -> dict:
    if not isinstance(v, dict):
        _fail(field, f"must be an object, got {_show(v)}")
    return v


def _no_unknown(d: dict, allowed, field: str) -> None:
    extra = [k for k in d if k not in allowed]
    if extra:
        where = f"{field}.{extra[0]}" if field else extra[0]
        _fail(where, f"unknown field; {field or 'a definition'} has {', '.join(allowed)}")


def _number(v, field: str, positive: bool = False, allow_none: bool = False) -> Optional[float]:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(field, f"must be a finite number, got {_show(v)}")
    if positive and not v > 0:
        _fail(field, f"must be a number > 0, got {_show(v)}")
    return float(v)


def _integer(v, field: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        if isinstance(v, float) and v.is_integer() and lo <= v <= hi:
            return int(v)
        _fail(field, f"must be a whole number from {lo} to {hi}, got {_show(v)}")
    return v


def _text(v, field: str, allow_none: bool = False, max_len: int = 200) -> Optional[str]:
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > max_len:
        _fail(field, f"must be a non-empty text of at most {max_len} characters, got {_show(v)}")
    return v.strip()


def _vector(v, field: str, n: int, positive: bool = False, what: str = "one per channel") -> Optional[tuple]:
    if v is None:
        return None
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], list):
        v = v[0]  # ComfyUI's [1, C, 1, 1] tensors come as nested lists
    while isinstance(v, list) and v and all(isinstance(x, list) and len(x) == 1 for x in v):
        v = [x[0] for x in v]
    if not isinstance(v, list) or len(v) != n:
        _fail(field, f"must be a list of {n} numbers ({what}), got {_show(v)}")
    return tuple(_number(x, f"{field}[{i}]", positive) for i, x in enumerate(v))


def _sampling(d: dict) -> Sampling:
    d = _object(d, "sampling")
    kind = d.get("kind")
    if kind not in SAMPLING_KINDS:
        _fail("sampling.kind", f"must be one of {', '.join(SAMPLING_KINDS)}, got {_show(kind)}")
    params = KIND_PARAMS[kind]
    _no_unknown(d, ("kind", "prediction", *params), "sampling")
    prediction = d.get("prediction", PREDICTIONS[kind][0])
    if not isinstance(prediction, str) or prediction.upper() not in PREDICTIONS[kind]:
        _fail("sampling.prediction", f"{kind} sampling has {', '.join(PREDICTIONS[kind])}, got {_show(prediction)}")
    values = {"kind": kind, "prediction": prediction.upper()}
    for k, default in params.items():
        v = d.get(k, default)
        f = f"sampling.{k}"
        if k == "num_timesteps":
            v = _integer(v, f, 2, 100000)
        elif k == "zsnr":
            if not isinstance(v, bool):
                _fail(f, f"must be true or false, got {_show(v)}")
        elif k in ("linear_start", "linear_end"):
            v = _number(v, f, positive=True)
            if not v < 1:
                _fail(f, f"must be a beta between 0 and 1, got {_show(d.get(k))}")
        else:
            v = _number(v, f, positive=True, allow_none=default is None)
        values[_SAMPLING_FIELD.get(k, k)] = v
    if kind == "discrete" and not values["linear_start"] < values["linear_end"]:
        _fail("sampling.linear_end", "must be larger than linear_start")
    if kind == "edm" and not values["edm_sigma_min"] < values["edm_sigma_max"]:
        _fail("sampling.sigma_max", "must be larger than sigma_min")
    return Sampling(**values)


def _rgb(lat: dict, channels: int):
    rows = lat.get("latent_rgb_factors")
    reshape = lat.get("latent_rgb_factors_reshape")
    if reshape is not None:
        reshape = _object(reshape, "latent.latent_rgb_factors_reshape")
        _no_unknown(reshape, ("pixel_shuffle",), "latent.latent_rgb_factors_reshape")
        r = _integer(reshape.get("pixel_shuffle"), "latent.latent_rgb_factors_reshape.pixel_shuffle", 2, 8)
        if channels % (r * r):
            _fail("latent.latent_rgb_factors_reshape.pixel_shuffle", f"{channels} channels do not split by {r * r}")
        reshape = {"pixel_shuffle": r}
    factors = None
    if rows is not None:
        usable = channels // (reshape["pixel_shuffle"] ** 2) if reshape else channels
        if not isinstance(rows, list) or not 1 <= len(rows) <= usable:
            _fail("latent.latent_rgb_factors", f"must be a list of 1 to {usable} rows of 3 numbers, got {_show(rows)}")
        factors = tuple(_vector(r, f"latent.latent_rgb_factors[{i}]", 3, what="R, G, B") for i, r in enumerate(rows))
        if reshape and len(factors) != usable:
            _fail("latent.latent_rgb_factors", f"needs {usable} rows with latent_rgb_factors_reshape")
    bias = _vector(lat.get("latent_rgb_factors_bias"), "latent.latent_rgb_factors_bias", 3, what="R, G, B")
    return factors, bias, reshape


def _latent(d: dict, name: str) -> LatentFormat:
    lat = _object(d, "latent")
    _no_unknown(lat, _LATENT, "latent")
    if "channels" not in lat:
        _fail("latent.channels", "missing (the number of latent channels)")
    channels = _integer(lat["channels"], "latent.channels", 1, MAX_CHANNELS)
    dims = _integer(lat.get("dimensions", 2), "latent.dimensions", 2, 3)
    mean = _vector(lat.get("latents_mean"), "latent.latents_mean", channels)
    std = _vector(lat.get("latents_std"), "latent.latents_std", channels, positive=True)
    if (mean is None) != (std is None):
        _fail("latent.latents_std" if std is None else "latent.latents_mean",
              "latents_mean and latents_std go together")
    shift = _number(lat.get("shift_factor"), "latent.shift_factor", allow_none=True)
    if shift is not None and mean is not None:
        _fail("latent.shift_factor", "give either shift_factor or latents_mean/latents_std, not both")
    factors, bias, reshape = _rgb(lat, channels)
    return LatentFormat(
        name=_text(lat.get("format", name), "latent.format"), channels=channels, dimensions=dims,
        scale_factor=_number(lat.get("scale_factor", 1.0), "latent.scale_factor", positive=True),
        shift_factor=shift, latents_mean=mean, latents_std=std, rgb_factors=factors, rgb_factors_bias=bias,
        rgb_factors_reshape=reshape,
        taesd_decoder_name=_text(lat.get("taesd_decoder_name"), "latent.taesd_decoder_name", allow_none=True),
        spacial_downscale_ratio=_integer(lat.get("spacial_downscale_ratio", 8), "latent.spacial_downscale_ratio",
                                         1, 1024),
        temporal_downscale_ratio=_integer(lat.get("temporal_downscale_ratio", 1), "latent.temporal_downscale_ratio",
                                          1, 1024),
        process_formula=_text(lat.get("process_formula"), "latent.process_formula", True, 2000) or "",
    )


def _detection(d) -> dict:
    if d is None:
        return {}
    d = _object(d, "detection")
    keys = d.get("minimal_keys")
    if keys is not None:
        if not isinstance(keys, list):
            _fail("detection.minimal_keys", f"must be a list of {{\"key\", \"shape\"}} objects, got {_show(keys)}")
        for i, k in enumerate(keys):
            k = _object(k, f"detection.minimal_keys[{i}]")
            _text(k.get("key"), f"detection.minimal_keys[{i}].key")
            shape = k.get("shape")
            if shape is not None and (not isinstance(shape, list) or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
                _fail(f"detection.minimal_keys[{i}].shape", f"must be a list of whole numbers, got {_show(shape)}")
    meta = d.get("safetensors_metadata")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        _fail("detection.safetensors_metadata", "must be an object of text values (the file's __metadata__)")
    return json.loads(json.dumps(d))  # a private deep copy


def family_from_definition(d, source: str = BUILTIN) -> Family:
    """Check a definition and build its ``Family``; raises ``FamilyDefinitionError`` naming the field."""
    d = _object(d, "definition")
    _no_unknown(d, _TOP, "")
    name = d.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        _fail("name", "must be 1-64 letters, digits or _ . + - (starting with a letter or digit), "
                      f"got {_show(name)}")
    sampling = _sampling(d.get("sampling") if "sampling" in d else _fail("sampling", "missing"))
    latent = _latent(d.get("latent") if "latent" in d else _fail("latent", "missing"), name)
    reference = _object(d.get("reference", {}), "reference")
    sha = reference.get("sigmas_sha256_f32le")
    if sha is not None:
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            _fail("reference.sigmas_sha256_f32le", f"must be 64 lower-case hex digits, got {_show(sha)}")
        sampling = Sampling(**{**sampling.__dict__, "table_sha256": sha})
    default_type = _MODEL_TYPE[(sampling.kind, sampling.prediction)]
    return Family(
        name=name, display_name=_text(d.get("display_name", name), "display_name"),
        comfy_class=_text(d.get("comfy_class"), "comfy_class", allow_none=True) or "",
        model_type=_text(d.get("model_type", default_type), "model_type"), sampling=sampling, latent=latent,
        detection=_detection(d.get("detection")), note=_text(d.get("note"), "note", True, 2000) or "",
        source=source, reference=json.loads(json.dumps(reference)),
    )


def _list(t):
    return None if t is None else [_list(x) if isinstance(x, tuple) else x for x in t]


def definition_of(fam: Family) -> dict:
    """A family as a definition (the inverse of ``family_from_definition``): JSON values only."""
    s, lat = fam.sampling, fam.latent
    sampling = {"kind": s.kind, "prediction": s.prediction}
    for k in KIND_PARAMS[s.kind]:
        sampling[k] = getattr(s, _SAMPLING_FIELD.get(k, k))
    d = {"name": fam.name, "display_name": fam.display_name, "comfy_class": fam.comfy_class or None,
         "model_type": fam.model_type}
    if fam.note:
        d["note"] = fam.note
    d["sampling"] = sampling
    d["latent"] = {
        "format": lat.name, "channels": lat.channels, "dimensions": lat.dimensions, "scale_factor": lat.scale_factor,
        "shift_factor": lat.shift_factor, "latents_mean": _list(lat.latents_mean), "latents_std": _list(lat.latents_std),
        "latent_rgb_factors": _list(lat.rgb_factors), "latent_rgb_factors_bias": _list(lat.rgb_factors_bias),
        "latent_rgb_factors_reshape": dict(lat.rgb_factors_reshape) if lat.rgb_factors_reshape else None,
        "taesd_decoder_name": lat.taesd_decoder_name, "spacial_downscale_ratio": lat.spacial_downscale_ratio,
        "temporal_downscale_ratio": lat.temporal_downscale_ratio, "process_formula": lat.process_formula or None,
    }
    if d["latent"]["process_formula"] is None:
        del d["latent"]["process_formula"]
    if d["comfy_class"] is None:
        del d["comfy_class"]
    if fam.detection:
        d["detection"] = json.loads(json.dumps(fam.detection))
    reference = dict(fam.reference)
    if s.table_sha256:
        reference["sigmas_sha256_f32le"] = s.table_sha256
    else:
        reference.pop("sigmas_sha256_f32le", None)
    if reference:
        d["reference"] = json.loads(json.dumps(reference))
    return d


def load_builtin() -> tuple:
    """The built-in families of ``data/families.json`` and its ComfyUI class defaults."""
    text = resources.files(__package__).joinpath("data").joinpath("families.json").read_text(encoding="utf-8")
    data = json.loads(text)
    fams = []
    for name, d in data["families"].items():
        try:
            fams.append(family_from_definition(d))
        except FamilyDefinitionError as e:  # pragma: no cover - the generator's output is checked by tests
            raise RuntimeError(f"built-in family {name}: {e}") from None
    return fams, data.get("class_defaults", {})
