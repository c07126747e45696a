"""The inputs a user opens: a latent file, a picture or ComfyUI workflow, or a model (a checkpoint, a
diffusers folder, a family name).

These functions read files, so the app calls them on worker threads and the CLI calls them directly.
Nothing here changes any state: each returns a new record (``LoadedLatent``, ``DetectedModel``,
``NonFiniteLatent`` when a latent holds NaN/Inf values and the user must be asked first,
``PictureInput`` for a picture or workflow, which the app encodes or reads in a step of its own, or,
for the app, a ``core.batch_file.BatchFile`` when the file holds a batch: the user chooses to browse it
or to use it as the input). ``picture_input`` is the one decision of what is a picture: its first
bytes, or its name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

from .latent_io import NonFiniteLatentError, read_latent
from .vae.images import PICTURE_EXTENSIONS, sniff_picture

#: A file with one of these names is a model, never a latent.
CHECKPOINT_EXTS = (".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
#: A file with this name is a latent (ComfyUI's SaveLatent / LoadLatent).
LATENT_EXTS = (".latent",)
#: Pictures (encoded with a VAE) and ComfyUI workflow files (their sampler settings).
PICTURE_EXTS = PICTURE_EXTENSIONS
WORKFLOW_EXTS = (".json",)
#: What can be opened or dropped: latents, safetensors files (a latent or a model), checkpoints, pictures and
#: ComfyUI workflows.
OPENABLE_EXTS = LATENT_EXTS + (".safetensors",) + CHECKPOINT_EXTS + PICTURE_EXTS + WORKFLOW_EXTS


@dataclass
class LoadedLatent:
    """A latent read from a file (float32, multiplier applied, NaN/Inf zeroed when the user allowed it)."""

    tensor: torch.Tensor  # float32 CPU tensor [B, C, H, W] or [B, C, T, H, W]
    name: str
    path: Optional[str]
    sha256: Optional[str]
    stored_dtype: str
    kind: str  # "latent", "legacy latent" or "safetensors" (see ``core.latent_io.LatentFile``)
    summary: dict
    unsampler: Optional[dict] = None  # an Unsampler export's parameters
    is_sample: bool = False
    nonfinite: int = 0  # NaN/Inf values that were replaced by 0
    picture: Optional[dict] = None  # a latent encoded from a picture: ``PictureLatent.metadata()`` and the family

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)


@dataclass(frozen=True)
class NonFiniteLatent:
    """A latent that holds NaN/Inf values: the user is asked before it is used (with them zeroed)."""

    path: str
    count: int
    is_sample: bool = False


@dataclass(frozen=True)
class PictureInput:
    """A picture (PNG, JPEG, WebP) or a ComfyUI workflow ``.json`` to open: nothing is read yet."""

    path: str
    kind: str  # "picture" or "workflow"


@dataclass
class DetectedModel:
    """A checkpoint (or family name) and what ``core.detect.resolve_model`` made of it."""

    source: str  # what the user named: a path, or a family name
    detection: object  # core.detect.Detection: .family, .family_obj, .prediction, .shift, .evidence

    @property
    def family(self) -> str:
        return self.detection.family


def open_latent(path, is_sample: bool = False, allow_nonfinite: bool = False) -> LoadedLatent:
    """Read and summarise a latent file. NaN/Inf values are a ``NonFiniteLatentError`` unless allowed;
    allowed, they are replaced by 0 and counted in ``nonfinite``."""
    path = os.fspath(path)
    lf = read_latent(path, allow_nonfinite=allow_nonfinite)
    if lf.nonfinite:
        lf.tensor = torch.nan_to_num(lf.tensor, nan=0.0, posinf=0.0, neginf=0.0)
    return LoadedLatent(tensor=lf.tensor, name=os.path.basename(path), path=os.path.abspath(path), sha256=lf.sha256,
                        stored_dtype=lf.stored_dtype, kind=lf.kind, summary=lf.summary(), unsampler=lf.unsampler,
                        is_sample=is_sample, nonfinite=lf.nonfinite)


def load_latent(path, is_sample: bool = False, allow_nonfinite: bool = False, as_input: bool = True):
    """``open_latent`` for the app: NaN/Inf values give a ``NonFiniteLatent`` (to ask the user about).
    Unless ``as_input``, a file that holds a batch gives its ``BatchFile`` (header only: nothing is read
    until the user has chosen to browse it or to use it as the input)."""
    if not as_input:
        from .batch_file import is_batch_file, open_batch

        bf = open_batch(path, is_sample)
        if is_batch_file(bf.shape):
            return bf
    try:
        return open_latent(path, is_sample, allow_nonfinite)
    except NonFiniteLatentError:
        bad = read_latent(path, allow_nonfinite=True).nonfinite
        return NonFiniteLatent(os.fspath(path), bad, is_sample)


def detect_model(path_or_name: str) -> DetectedModel:
    """A model from what the user named (``core.detect.resolve_model``; no weights are loaded)."""
    from .detect import resolve_model

    return DetectedModel(source=path_or_name, detection=resolve_model(path_or_name, shift=None, prediction=None))


def is_latent_file(path) -> bool:
    """Is this file a latent (True) or a model (False)? ``core.detect.classify_file`` decides it."""
    from .detect import classify_file

    return classify_file(path) == "latent"


def picture_input(path) -> Optional[PictureInput]:
    """A picture (it starts like a PNG, JPEG or WebP, or is named like one: a broken one gets the picture
    reader's message) or a ComfyUI workflow (``.json``); None for anything else."""
    p = os.fspath(path)
    if os.path.isdir(p):
        return None
    if sniff_picture(p) or p.lower().endswith(PICTURE_EXTS):
        return PictureInput(p, "picture")
    if p.lower().endswith(WORKFLOW_EXTS):
        return PictureInput(p, "workflow")
    return None


def open_input(path, is_sample: bool = False, allow_nonfinite: bool = False, as_input: bool = True):
    """A file opened as the source (File > Open): a picture or workflow (``PictureInput``), else a latent
    (``load_latent``: a batch is a ``BatchFile`` unless ``as_input``)."""
    return picture_input(path) or load_latent(path, is_sample, allow_nonfinite, as_input)


def load_dropped(path):
    """A file dropped or named without saying what it is: a picture or workflow, a latent (a batch is
    offered to browse), or else a model."""
    found = picture_input(path)
    if found is not None:
        return found
    return load_latent(path, as_input=False) if is_latent_file(path) else detect_model(os.fspath(path))


def picture_loaded(res, family) -> LoadedLatent:
    """The source latent of a picture encoded by ``core.vae.picture_latent`` (``res``: a ``PictureLatent``)."""
    from .families import get_family
    from .latent_io import LatentFile, file_sha256

    pic = res.picture
    lf = LatentFile(path=os.path.abspath(pic.path), tensor=res.latent, kind="picture", tensor_name="",
                    stored_dtype="F32", multiplier=1.0, sha256=file_sha256(pic.path), metadata=res.metadata())
    return LoadedLatent(tensor=res.latent, name=os.path.basename(pic.path), path=lf.path, sha256=lf.sha256,
                        stored_dtype="F32", kind="picture", summary=lf.summary(),
                        picture=dict(res.metadata(), family=get_family(family).name))


__all__ = ["LoadedLatent", "NonFiniteLatent", "DetectedModel", "PictureInput", "open_latent", "load_latent",
           "detect_model", "is_latent_file", "picture_input", "open_input", "load_dropped", "picture_loaded",
           "CHECKPOINT_EXTS", "LATENT_EXTS", "PICTURE_EXTS", "WORKFLOW_EXTS", "OPENABLE_EXTS"]
