"""Model detection: which family a checkpoint or diffusers folder is, without loading its weights.

Public API:
- ``detect_model(path, shift=None, prediction=None) -> Detection`` for a ``.safetensors``/``.sft``
  file (header only), a ``.ckpt``/``.pt``/``.pth``/``.bin`` pickle (read by an unpickler that runs
  no code from the file) or a diffusers folder;
- ``resolve_model(spec, shift=None, prediction=None) -> Detection`` for what a user types: a family
  name (case-insensitive), a checkpoint file or a diffusers folder;
- ``classify_file(path) -> "latent" | "model"``: which of the two a dropped or named file is.

The rules are ComfyUI's (see ``rules``); a file that is not a diffusion model, or one whose
architecture is unknown or unsupported, raises ``BadFileError`` with a one-line reason.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Optional

from .file_kind import classify_file
from ..errors import BadFileError, BadParameterError
from ..families import SHIFT_KINDS, Family, get_family
from ..safetensors_io import open_checked, read_header

#: Names of the loader steps re-exported here, imported on first use: a family chosen by name (the
#: command line's usual ``--model SDXL``) never loads the checkpoint readers and their rules.
_LAZY = {"detect_diffusers": "diffusers_folder", "KeyIndex": "state_dict", "index_from_safetensors": "state_dict",
         "read_torch_pickle": "pickle_reader", "read_torch_zip": "pickle_reader", "ArchMatch": "rules",
         "detect_architecture": "rules"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
SHIFTABLE_KINDS = SHIFT_KINDS
_PREDICTION_WORDS = {"epsilon": "EPS", "eps": "EPS", "v": "V_PREDICTION", "v_prediction": "V_PREDICTION",
                     "v-prediction": "V_PREDICTION", "vpred": "V_PREDICTION", "flow": "CONST",
                     "rectified_flow": "CONST"}


@dataclass(frozen=True)
class Detection:
    """What a model file (or a built-in family choice) means for sampling.

    ``family`` is a registry name; ``family_obj`` is that family with what the file implies
    (e.g. zsnr, EDM settings) and the user's overrides applied. ``prediction`` and ``shift`` are
    ``family_obj``'s (``shift`` is None for families without one). ``model_type`` is ComfyUI's
    ModelType as the file gives it, before overrides.
    """

    kind: str  # "checkpoint", "diffusers" or "family"
    family: str
    prediction: str
    shift: Optional[float]
    evidence: list = field(hash=False)
    overrides: dict = field(hash=False)
    path: Optional[str]
    family_obj: Family
    model_type: str = ""
    comfy_class: str = ""
    container: str = ""

    @property
    def display_name(self) -> str:
        return self.family_obj.display_name

    def to_json(self) -> dict:
        """A JSON-ready summary, for the CLI's ``--json`` and the GUI's "detected" panel."""
        lat = self.family_obj.latent
        return {
            "kind": self.kind, "family": self.family, "display_name": self.display_name,
            "prediction": self.prediction, "shift": self.shift, "model_type": self.model_type,
            "comfy_class": self.comfy_class, "container": self.container, "path": self.path,
            "sampling_kind": self.family_obj.sampling.kind, "latent_format": lat.name,
            "latent_channels": lat.channels, "evidence": list(self.evidence), "overrides": dict(self.overrides),
        }


def _sniff(path: str) -> bytes:
    try:
        with open_checked(path) as f:  # a regular file only: a FIFO would block open() forever
            return f.read(9)
    except PermissionError:
        raise BadFileError(f"{path}: permission denied (cannot read the file)") from None
    except OSError as e:
        raise BadFileError(f"{path}: cannot open ({e.strerror or e})") from None


def read_index(path: str) -> KeyIndex:
    """The tensor names and shapes of a checkpoint file, by its content (not its extension)."""
    from .pickle_reader import read_torch_pickle, read_torch_zip
    from .state_dict import index_from_safetensors

    head = _sniff(path)
    ext = os.path.splitext(path)[1].lower()
    if head.startswith(b"PK\x03\x04"):
        return read_torch_zip(path)
    if head.startswith(b"GGUF"):
        raise BadFileError(f"{os.path.basename(path)}: GGUF files are not supported; use the .safetensors "
                           "version or choose the family by name")
    safetensors_like = head[8:9] == b"{" or ext in SAFETENSORS_EXTENSIONS
    if not safetensors_like and (head[:1] == b"\x80" or ext in PICKLE_EXTENSIONS):
        try:
            return read_torch_pickle(path)
        except OSError as e:
            raise BadFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return index_from_safetensors(read_header(path))


def _container_line(index: KeyIndex) -> str:
    return f"{index.container}: {len(index.shapes)} tensors (no weights loaded)"


def _metadata_hints(index: KeyIndex, prediction: str) -> list:
    """Evidence lines for ``__metadata__`` modelspec hints; they never override what the keys prove."""
    meta = index.metadata
    out = []
    arch = meta.get("modelspec.architecture")
    if arch:
        out.append(f"metadata: modelspec.architecture {arch!r} (a hint only; the keys decide)")
    said = meta.get("modelspec.prediction_type")
    if said:
        word = _PREDICTION_WORDS.get(said.strip().lower())
        if word and word != prediction:
            out.append(f"metadata: modelspec.prediction_type {said!r} disagrees with the keys ({prediction}); "
                       "ComfyUI follows the keys, so set the prediction override if the metadata is right")
        else:
            out.append(f"metadata: modelspec.prediction_type {said!r}")
    return out


def _family_for(arch: ArchMatch) -> Family:
    """The registry family, with the sampling facts the file adds (zsnr, EDM settings, shift)."""
    fam = get_family(arch.family)
    if arch.sampling:
        fam = dataclasses.replace(fam, sampling=dataclasses.replace(fam.sampling, **arch.sampling))
    if arch.display_name:
        fam = dataclasses.replace(fam, display_name=arch.display_name)
    return fam


def _check_overrides(shift, prediction) -> dict:
    overrides = {}
    if shift is not None:
        try:
            overrides["shift"] = float(shift)
        except (TypeError, ValueError):
            raise BadParameterError(f"shift must be a number, got {shift!r}") from None
    if prediction is not None:
        if not isinstance(prediction, str) or not prediction.strip():
            raise BadParameterError(f"prediction must be a name such as EPS or V_PREDICTION, got {prediction!r}")
        p = prediction.strip()
        overrides["prediction"] = _PREDICTION_WORDS.get(p.lower(), p.upper())
    return overrides


def _finish(kind: str, family: Family, base: str, evidence: list, path, shift, prediction,
            model_type: str, comfy_class: str, container: str) -> Detection:
    """Apply the user's overrides and build the Detection."""
    overrides = _check_overrides(shift, prediction)
    final = family.with_overrides(**overrides)
    s = final.sampling
    for k, v in overrides.items():
        before = family.sampling.shift if k == "shift" else family.sampling.prediction
        evidence.append(f"override: {k} {v} (the model's own: {before})")
    return Detection(kind=kind, family=base, prediction=s.prediction,
                     shift=s.shift if s.kind in SHIFTABLE_KINDS else None, evidence=evidence,
                     overrides=overrides, path=path, family_obj=final, model_type=model_type,
                     comfy_class=comfy_class, container=container)


def _checked_path(path) -> str:
    try:
        p = os.fspath(path)
    except TypeError:
        raise BadParameterError(f"a model path must be a string or path, got {type(path).__name__}") from None
    if not isinstance(p, str) or not p:
        raise BadParameterError("empty model path")
    if not os.path.exists(p):
        raise BadFileError(f"{p}: no such file or folder")
    return p


def _named(path: str, fn, *args):
    """Run ``fn``; a ``BadFileError`` it raises gets the file name in front (same error type)."""
    try:
        return fn(*args)
    except BadFileError as e:
        name = os.path.basename(path)
        msg = str(e)
        raise (e if msg.startswith(name) else type(e)(f"{name}: {msg}")) from None


def detect_model(path, shift: Optional[float] = None, prediction: Optional[str] = None) -> Detection:
    """Detect the family of a checkpoint file or diffusers folder, then apply the overrides."""
    from .diffusers_folder import detect_diffusers
    from .rules import detect_architecture

    p = _checked_path(path)
    if os.path.isdir(p):
        arch = detect_diffusers(p)
        family = _family_for(arch)
        evidence = [f"diffusers folder {os.path.basename(os.path.normpath(p))}"] + list(arch.evidence)
        kind, container = "diffusers", "diffusers folder"
    else:
        index = _named(p, read_index, p)
        arch = _named(p, detect_architecture, index)
        family = _family_for(arch)
        evidence = [_container_line(index)] + list(arch.evidence) + _metadata_hints(index, family.sampling.prediction)
        kind, container = "checkpoint", index.container
    return _finish(kind, family, arch.family, evidence, p, shift, prediction,
                   arch.model_type, arch.comfy_class, container)


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or os.path.splitext(spec)[1].lower() in (
        PICKLE_EXTENSIONS + SAFETENSORS_EXTENSIONS + (".gguf",))


def resolve_model(spec, shift: Optional[float] = None, prediction: Optional[str] = None) -> Detection:
    """A model from what the user gave: a ``Family``, a family name, a checkpoint file or a diffusers folder."""
    if isinstance(spec, Family):
        fam = spec
    else:
        try:
            s = os.fspath(spec)
        except TypeError:
            raise BadParameterError(f"a model must be a family name or a path, got {type(spec).__name__}") from None
        if not isinstance(s, str) or not s.strip():
            raise BadParameterError("no model given: name a family (e.g. SDXL) or a checkpoint file")
        if os.path.exists(s):
            return detect_model(s, shift=shift, prediction=prediction)
        try:
            fam = get_family(s)
        except BadParameterError:
            if _looks_like_path(s):
                raise BadFileError(f"{s}: no such file or folder") from None
            raise
    evidence = [f"built-in family {fam.name} ({fam.display_name}); no file"]
    return _finish("family", fam, fam.name, evidence, None, shift, prediction,
                   fam.model_type, fam.comfy_class, "built-in")
