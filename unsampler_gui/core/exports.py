"""The export kinds: one registry, read by the export dialog and by ``unsampler export``.

Each ``ExportKind`` says what it is (label, extension, file filter, menu item), what it needs (the
schedule only, or the frames), whether the user picks its frames, its options, where it writes (a
file, or ComfyUI's input folder), and does the job: ``kind.write(source, request, reporter) -> path``.

The source is what the session offers (``ExportSource``): the frames of the current result when there
is one, else the spec of the current inputs. Without a current result a ``.latent`` export runs the
unsampler straight to the file (bounded memory), and a picture export makes just the frames it shows.
The writing itself is core's (``core.export``, ``core.pictures``), atomic: a cancelled or failed
export leaves no file.

A new export kind is one more entry in ``EXPORTS`` (and its writer, when core has none yet).
"""
from __future__ import annotations

import json

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import unsample
from .errors import BadParameterError
from .unsample import Plan, UnsampleResult, UnsampleSpec

LATENT, COMFYUI, SIGMAS_JSON, SIGMAS_TEXT, SHEET, ANIMATION = (
    "latent", "comfyui", "sigmas_json", "sigmas_text", "contact_sheet", "animation")
#: What a kind needs: the schedule only (no run), or the frames.
SCHEDULE, FRAMES = "schedule", "frames"
#: Where a kind writes: a file the user names, or the next free name in ComfyUI's input folder.
FILE, COMFYUI_INPUT = "file", "comfyui"


@dataclass(frozen=True, eq=False)
class ExportSource:
    """The current result (None when there is none made from the current inputs), the current spec (None,
    with ``spec_error``, when the inputs cannot run) and its plan (None while it is not known)."""

    result: Optional[UnsampleResult]
    spec: Optional[UnsampleSpec]
    spec_error: str = ""
    plan: Optional[Plan] = None
    stem: str = "unsampler"
    max_memory: Optional[int] = None  # a streamed export holds at most this many bytes

    @property
    def has_frames(self) -> bool:
        """The frames are in memory already (a current in-memory result)."""
        return self.result is not None and self.result.latent is not None

    @property
    def n_frames(self) -> int:
        """Frames (steps) the source has, or makes: 0 while that is not known."""
        return len(self.plan.positions) if self.plan is not None else 0

    @property
    def batch(self) -> int:
        if self.plan is not None:
            return self.plan.batch
        return int(self.spec.latent.shape[0]) if self.spec is not None else 1

    @property
    def frame_bytes(self) -> int:
        if self.plan is not None:
            return self.plan.frame_bytes
        return self.spec.latent[0].numel() * 4 if self.spec is not None else 0


@dataclass(frozen=True)
class ExportOption:
    """One option of an export kind: a number in a range, or one of ``choices`` ((value, label) pairs)."""

    name: str
    label: str
    default: Any
    help: str = ""
    range: Optional[tuple] = None
    choices: tuple = ()
    step: float = 1
    decimals: int = 0

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value):
        """``value`` as this option's type, or ``BadParameterError`` that names the option."""
        if self.choices:
            if value not in [v for v, _ in self.choices]:
                raise BadParameterError(f"{self.name} must be one of {', '.join(v for v, _ in self.choices)}, "
                                        f"got {value!r}")
            return value
        try:
            value = type(self.default)(value)
        except (TypeError, ValueError):
            raise BadParameterError(f"{self.name} must be a number, got {value!r}") from None
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise BadParameterError(f"{self.name} must be between {self.range[0]} and {self.range[1]}, "
                                    f"got {value!r}")
        return value


@dataclass(frozen=True)
class ExportRequest:
    """What the user chose: the file (None for ComfyUI's folder), the steps in output order, the options."""

    path: Optional[str]
    positions: tuple = ()
    overwrite: bool = False
    options: dict = field(default_factory=dict)  # the kind's options; comfy_root and stem for ComfyUI

    def option(self, opt: ExportOption):
        return opt.check(self.options.get(opt.name, opt.default))


@dataclass(frozen=True)
class ExportKind:
    key: str
    label: str
    menu: str  # the File menu's item
    ext: str
    filter: str  # the file dialog's filter ("" when the kind picks its own file name)
    needs: str  # SCHEDULE or FRAMES
    write: Callable  # write(source, request, reporter) -> the written path
    exts: tuple = ()  # other extensions it writes (chosen by the file name)
    shortcut: str = ""
    destination: str = FILE
    options: tuple = ()
    frames_shown: int = 0  # pictures: every k-th step is chosen to show about this many
    streams: bool = False  # without a current result it runs straight to the file, in bounded memory
    keeps_end: bool = False  # the frame choice always ends on the range's last (noisiest) step

    def select(self, n: int, start: int = 0, stop: Optional[int] = None, every: int = 1,
               reverse: bool = False) -> list:
        """The chosen steps of ``[start, stop)``, every ``every``-th (``core.export.select_positions``)."""
        from .export import select_positions

        return select_positions(n, start, stop, every, reverse, keep_end=self.keeps_end)

    @property
    def picks_frames(self) -> bool:
        return self.needs == FRAMES

    def default_every(self, n: int) -> int:
        """The step stride the frame choice starts with for ``n`` steps."""
        return max(1, math.ceil(n / self.frames_shown)) if self.frames_shown and n else 1

    def target(self, path: str) -> str:
        """``path`` with this kind's extension when it has none."""
        p = os.path.abspath(os.path.expanduser(path))
        return p if os.path.splitext(p)[1] else p + self.ext

    def source_text(self, source: ExportSource) -> tuple:
        """(what this export will draw on, whether it can run now)."""
        r = source.result
        if self.needs == SCHEDULE:
            text, ok = "the sigmas of the current parameters (no run needed)", source.spec is not None or r is not None
        elif source.has_frames:
            text, ok = f"from the last run: {len(r.plan.positions)} frames of {list(r.plan.out_shape)}", True
        elif self.streams:
            text = ("no finished run with the current parameters: the export runs the unsampler straight to the "
                    "file, with bounded memory")
            ok = source.spec is not None
        else:
            text = "no finished run with the current parameters: the chosen frames are made for the pictures"
            ok = source.spec is not None
        if not ok and source.spec_error:
            text += f" ({source.spec_error})"
        return text, ok

    def check(self, source: ExportSource) -> None:
        """``BadParameterError`` when this export has nothing to draw on."""
        if not self.source_text(source)[1]:
            raise BadParameterError(source.spec_error or "nothing to export")


# -- the jobs -------------------------------------------------------------------------------------------
def _plan(source: ExportSource) -> Plan:
    if source.result is not None:
        return source.result.plan
    if source.plan is not None:
        return source.plan
    if source.spec is None:
        raise BadParameterError(source.spec_error or "nothing to export")
    return unsample.plan_unsample(source.spec)


def sigmas_for_clipboard(source: ExportSource, as_json: bool = False) -> str:
    """The sigmas as the Sigmas exports write them, for the clipboard: ManualSigmas text of the full schedule
    (high to low, as a sampler takes it), or the JSON document (schedule, the node's slice and the raw sigmas)."""
    from .export import sigmas_document
    from .sigma_format import manual_sigmas_text

    plan = _plan(source)
    if as_json:
        return json.dumps(sigmas_document(plan), indent=1)
    try:
        return manual_sigmas_text(plan.schedule.tolist())
    except ValueError as e:
        raise BadParameterError(str(e)) from None


def _write_sigmas_json(source, req: ExportRequest, rep) -> str:
    from .export import export_sigmas_json

    return export_sigmas_json(_plan(source), req.path, overwrite=req.overwrite)


def _write_sigmas_text(source, req: ExportRequest, rep) -> str:
    from .export import export_sigmas_text

    return export_sigmas_text(_plan(source), req.path, overwrite=req.overwrite, which=req.option(WHICH))


def _write_latent(source, req: ExportRequest, rep, target: Optional[str] = None) -> str:
    """The chosen steps as a ``.latent``: from the current result, or a run streamed to the file."""
    target = req.path if target is None else target
    if source.has_frames:
        from .export import export_latent

        return export_latent(source.result, target, positions=list(req.positions), reverse=False,
                             overwrite=req.overwrite, reporter=rep)
    if source.spec is None:
        raise BadParameterError(source.spec_error or "nothing to export")
    run = unsample.run_unsample(source.spec.replace(frames=tuple(req.positions)), rep, output=target,
                                overwrite=req.overwrite, max_memory=source.max_memory)
    return run.path


def _write_comfyui(source, req: ExportRequest, rep) -> str:
    from .comfy_paths import comfy_input_dir, unique_latent_name

    root = str(req.options.get("comfy_root") or "").strip()
    if not root:
        raise BadParameterError("choose the ComfyUI folder (the install, or ComfyUI Desktop's user folder)")
    target = unique_latent_name(comfy_input_dir(root), str(req.options.get("stem") or source.stem))
    return _write_latent(source, req, rep, str(target))


def _frames(source: ExportSource, req: ExportRequest, rep) -> tuple:
    """(frame rows of batch item ``item``, their sigmas, the family) for the chosen steps: from the current
    result, or made now in memory (just these steps; each frame is the same as in a full run)."""
    positions = list(req.positions)
    if source.has_frames:
        r, rows = source.result, positions
    else:
        if source.spec is None:
            raise BadParameterError(source.spec_error or "nothing to export")
        r, rows = unsample.run_unsample(source.spec.replace(frames=tuple(positions)), rep), range(len(positions))
    B = r.plan.batch
    item = req.option(ITEM)
    if item >= B:
        raise BadParameterError(f"batch item {item} does not exist: the latent holds {B} (0..{B - 1})")
    sigmas = r.sigmas
    return ((r.latent[k * B + item] for k in rows), [float(sigmas[k]) for k in rows], r.plan.spec.family)


def sheet_title(spec, item: int = 0, batch: int = 1) -> str:
    """The contact sheet's title line: model, sampler, scheduler, steps (and the batch item of several)."""
    model = spec.family.display_name
    src = spec.model_source
    if src and src != spec.family.name:
        model += f" ({os.path.basename(str(src))})"
    text = (f"{spec.source_name or 'latent'}: {model} · {spec.sampler} · {spec.scheduler} · {spec.steps} steps"
            f" ({spec.start_at_step}..{spec.end_at_step})")
    return text + (f" · item {item} of {batch}" if batch > 1 else "")


def _write_sheet(source, req: ExportRequest, rep) -> str:
    from . import pictures
    from .job import export_metadata

    rows, sigmas, fam = _frames(source, req, rep)
    plan = _plan(source)
    item = req.option(ITEM)
    meta = export_metadata(plan, list(req.positions))
    meta.update(Title=sheet_title(plan.spec, item, plan.batch), Software="Unsampler", item=str(item))
    return pictures.contact_sheet(rows, fam, list(req.positions), sigmas, req.path, cell=req.option(CELL),
                                  overwrite=req.overwrite, reporter=rep, title=meta["Title"], metadata=meta)


def _write_animation(source, req: ExportRequest, rep) -> str:
    from . import pictures

    rows, sigmas, fam = _frames(source, req, rep)
    return pictures.animation(rows, fam, req.path, fps=req.option(FPS), overwrite=req.overwrite, reporter=rep,
                              size=req.option(SIZE), positions=list(req.positions), sigmas=sigmas)


# -- the registry -------------------------------------------------------------------------------------------
WHICH = ExportOption("which", "Sigmas", "schedule", choices=(("schedule", "Full schedule (high to low, for a sampler)"),
                                                              ("slice", "The node's slice (low to high)")),
                     help="the full schedule, as a sampler wants it, or the node's slice (the frames' sigmas)")
CELL = ExportOption("cell", "Cell size (px)", 128, range=(32, 512), help="the size of one frame in the sheet")
FPS = ExportOption("fps", "Frames per second", 12.0, range=(0.5, 60), decimals=1, help="the animation's speed")
SIZE = ExportOption("size", "Size (px)", 256, range=(32, 1024), help="the longer side of each frame")
ITEM = ExportOption("item", "Batch item", 0, range=(0, 4095), help="which latent of the batch the pictures show")

#: Default number of pictures in a contact sheet / an animation (every k-th frame is chosen to fit).
SHEET_FRAMES = 64
ANIMATION_FRAMES = 120

EXPORTS = {k.key: k for k in (
    ExportKind(LATENT, "Latent batch (.latent)", "&Export latent…", ".latent", "ComfyUI latent (*.latent)", FRAMES,
               _write_latent, shortcut="Ctrl+E", streams=True),
    ExportKind(COMFYUI, "Latent batch into ComfyUI's input folder", "Export to Comfy&UI…", ".latent", "", FRAMES,
               _write_comfyui, shortcut="Ctrl+Shift+E", destination=COMFYUI_INPUT, streams=True),
    ExportKind(SIGMAS_JSON, "Sigmas (JSON)", "Export sigmas (&JSON)…", ".json", "JSON (*.json)", SCHEDULE,
               _write_sigmas_json),
    ExportKind(SIGMAS_TEXT, "Sigmas as ManualSigmas text", "Export sigmas for &ManualSigmas…", ".txt",
               "Text (*.txt)", SCHEDULE, _write_sigmas_text, options=(WHICH,)),
    ExportKind(SHEET, "Contact sheet (PNG)", "Export contact &sheet…", ".png", "PNG picture (*.png)", FRAMES,
               _write_sheet, options=(CELL, ITEM), frames_shown=SHEET_FRAMES, keeps_end=True),
    ExportKind(ANIMATION, "Animation (WebP or GIF)", "Export &animation…", ".webp", "Animation (*.webp *.gif)",
               FRAMES, _write_animation, exts=(".gif",), options=(FPS, SIZE, ITEM), frames_shown=ANIMATION_FRAMES),
)}


def export_job(kind: str, source: ExportSource, path: Optional[str], positions, overwrite: bool,
               options: dict) -> Callable:
    """The function a worker runs: ``job(reporter) -> the written path``."""
    k = EXPORTS[kind]
    req = ExportRequest(path=path, positions=tuple(int(p) for p in positions), overwrite=overwrite,
                        options=dict(options))
    return lambda rep: k.write(source, req, rep)


def all_options() -> dict:
    """Every kind's options, by name (a name means one option everywhere)."""
    out = {}
    for k in EXPORTS.values():
        for opt in k.options:
            if out.setdefault(opt.name, opt) is not opt:
                raise AssertionError(f"two export options are called {opt.name}")
    return out


def add_cli_options(parser) -> None:
    """The kinds' options as command line options (each says which kinds take it)."""
    for opt in all_options().values():
        kinds = ", ".join(k.key for k in EXPORTS.values() if opt in k.options)
        kw: dict = {"dest": f"opt_{opt.name}", "default": None,
                    "help": f"{opt.help} ({kinds}; default {opt.default})"}
        if opt.choices:
            kw["choices"] = [v for v, _ in opt.choices]
        else:
            kw["type"] = type(opt.default)
            kw["metavar"] = opt.name.upper()
        parser.add_argument(opt.flag, **kw)


def options_from_cli(kind: ExportKind, args) -> dict:
    """The options of ``kind`` given on the command line (the rest take their defaults)."""
    out = {}
    for opt in kind.options:
        v = getattr(args, f"opt_{opt.name}", None)
        out[opt.name] = opt.default if v is None else opt.check(v)
    return out


__all__ = ["EXPORTS", "ExportKind", "ExportOption", "ExportRequest", "ExportSource", "export_job", "all_options",
           "add_cli_options", "options_from_cli", "sigmas_for_clipboard", "sheet_title", "LATENT", "COMFYUI", "SIGMAS_JSON", "SIGMAS_TEXT", "SHEET",
           "ANIMATION", "SCHEDULE", "FRAMES", "FILE", "COMFYUI_INPUT"]
