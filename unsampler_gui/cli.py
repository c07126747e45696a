"""``unsampler``: the headless command line, built on the core.

    unsampler sigmas --model SDXL --scheduler karras --steps 30 [--start A] [--end B] [--json]
    unsampler run --model Flux --latent in.latent --steps 1000 --seed 1 --output out.latent
    unsampler export KIND --model SDXL --latent in.latent --steps 30 (--output FILE | --comfyui FOLDER)
    unsampler info FILE [--json]
    unsampler families [--json]
    unsampler --families PATH ... (any command; before or after it; a family file or a folder of them)

User errors print one line on stderr and exit with status 2; nothing prints a traceback. Strings
from files and paths are printed escaped (``core.errors.printable``): a terminal never receives an
escape sequence or a newline from a file. SIGTERM and SIGHUP stop a run as Ctrl+C does, removing
its partial output.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import traceback
from typing import Optional

from . import __version__, cli_pictures
from .cli_progress import Progress as _Progress
from .core.errors import printable

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_CANCELLED = 130
#: The largest --max-memory (1 EiB): anything above is a typing mistake.
MAX_SIZE = 1 << 60


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and a hint to --help, not the whole usage."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"unsampler: error: {printable(message)} (see '{self.prog} --help')\n")


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: handled as Ctrl+C is (the run stops, its partial file is removed)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop_on(signum, frame):
    raise _Stopped(signum)


def _install_signals() -> dict:
    """SIGTERM and SIGHUP raise like SIGINT; returns the handlers to put back."""
    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            old[sig] = signal.signal(sig, _stop_on)
        except (ValueError, OSError):  # not the main thread, or not allowed here
            pass
    return old


def _log_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "unsampler", "unsampler-cli.log")


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5GB', '1000000' -> bytes: a finite size above 0 and at most 1 EiB."""
    t = text.strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        value = float(t[:-1]) * mult[t[-1]] if t and t[-1] in mult else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 2G or 512M)") from None
    if not math.isfinite(value) or not 1 <= value <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable size: give one from 1 byte to 1 EiB "
                                         "(e.g. 2G or 512M)")
    return int(value)


#: More threads than this is never faster (see ``core.devices.MAX_DEFAULT_THREADS``), only more memory.
MAX_THREADS = 256


def parse_count(text: str, most: int = 1 << 31) -> int:
    """A whole number from 0 (the default) to ``most``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= most:
        raise argparse.ArgumentTypeError(f"must be from 0 (the default) to {most}, got {value}")
    return value


def parse_threads(text: str) -> int:
    return parse_count(text, MAX_THREADS)


def parse_range(text: str):
    """'A:B' -> (A, B) over output steps; either side may be empty."""
    try:
        a, _, b = text.partition(":")
        return (int(a) if a else 0, int(b) if b else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a step range: {text!r} (use A:B, e.g. 0:100)") from None


def _session(args, command: str):
    """The session of a command: its run parameters, the model (``--model``) and the latent (``--latent``)."""
    from .core import params
    from .core.inputs import detect_model, open_latent
    from .core.session import Session

    session = Session(params.from_cli(args, command, skip=("family",)))
    session.set_model(detect_model(args.model))
    if getattr(args, "image", None) is not None:
        session.set_latent(_picture_source(args, session))
    elif getattr(args, "latent", None) is not None:
        from .cli_pictures import refuse_picture_as_latent

        refuse_picture_as_latent(args.latent)
        lat = open_latent(args.latent, allow_nonfinite=getattr(args, "allow_nonfinite", False))
        if lat.nonfinite:
            print(f"warning: replacing {lat.nonfinite} NaN/Inf values of the latent with 0", file=sys.stderr)
        session.set_latent(lat)
    return session


def _picture_source(args, session):
    """``--image PICTURE``: the picture encoded with the model's VAE, as the session's latent."""
    from .cli_pictures import image_latent

    return image_latent(args, session.effective_family(), args.model)


def _fmt(v: float) -> str:
    import numpy as np

    return repr(float(np.float32(v)))


# ---- commands ---------------------------------------------------------------------------------


def cmd_sigmas(args) -> int:
    from .core import params
    from .core.sigmas import ksampler_sigmas, node_slice, sigmas_document, slice_bounds

    session = _session(args, params.SIGMAS)
    fam, model, p = session.effective_family(), session.model_source(), session.params
    if args.json:
        print(json.dumps(sigmas_document(fam, p.sampler, p.scheduler, p.steps, p.start_at_step, p.end_at_step,
                                         model=model)))
        return 0
    schedule = ksampler_sigmas(fam, p.sampler, p.scheduler, p.steps)
    s, e = slice_bounds(p.steps, p.start_at_step, p.end_at_step)
    raw = node_slice(fam, schedule, p.steps, p.start_at_step, p.end_at_step)[1].tolist()  # the node's float32 division
    if args.text:
        from .core.sigma_format import manual_sigmas_text

        print(manual_sigmas_text(schedule.tolist()))
        return 0
    print(f"# {fam.name} ({fam.display_name}) {p.sampler}/{p.scheduler}, {p.steps} steps, "
          f"slice [{s}:{e}] -> {e - s} frames, scale_factor {fam.latent.scale_factor}")
    print(f"{'step':>6} {'sigma (model)':>16} {'raw = sigma/scale':>18}  frame")
    for k, v in enumerate(schedule.tolist()):
        frame = f"{e - 1 - k}" if s <= k < e else ""
        rawv = _fmt(raw[e - 1 - k]) if frame else ""
        print(f"{k:>6} {_fmt(v):>16} {rawv:>18}  {frame}")
    if s >= e:
        print("# the slice is empty: the node would produce no latents", file=sys.stderr)
    return 0


def _check_output(path: str, overwrite: bool) -> None:
    """An existing output needs --overwrite; a folder, a FIFO or a device is never replaced."""
    from .core.atomic import check_target
    from .core.errors import ResourceError

    if os.path.lexists(path) and not overwrite and not os.path.isdir(path):
        raise ResourceError(f"{path} already exists; pass --overwrite to replace it")
    check_target(path, overwrite)


def cmd_run(args) -> int:
    from .core import params
    from .core.export import select_positions
    from .core.unsample import plan_unsample, run_unsample

    if (args.latent is None) == (args.image is None):
        from .core.errors import BadParameterError

        raise BadParameterError("give the source as --latent FILE or --image PICTURE")
    spec = _session(args, params.RUN).spec(chunk_frames=args.chunk, threads=args.threads)
    plan = plan_unsample(spec)
    if args.range is not None or args.every != 1 or args.reverse:
        a, b = args.range if args.range is not None else (0, None)
        spec = spec.replace(frames=tuple(select_positions(plan.n_steps, a, b, args.every, args.reverse)))
        plan = plan_unsample(spec)
    _check_output(args.output, args.overwrite)
    if args.max_memory:
        from .core.export import check_memory_cap

        check_memory_cap(plan, args.max_memory, args.threads, "--max-memory")
    print(f"{plan.spec.family.name}: {plan.describe()} -> {printable(args.output)}", file=sys.stderr)
    res = run_unsample(plan, _Progress(), output=args.output, overwrite=args.overwrite, max_memory=args.max_memory)
    print(f"wrote {printable(res.path)} ({plan.out_shape[0]} latents {list(plan.out_shape)}) in {res.seconds:.2f}s "
          f"on {res.device}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    """Any export the app writes, from the same registry (``core.exports.EXPORTS``)."""
    from .core import exports, params
    from .core.errors import BadParameterError

    kind = exports.EXPORTS[args.kind]
    session = _session(args, params.EXPORT)
    session.memory_cap = args.max_memory or 0
    plan = session.ensure_plan()
    positions = ()
    if kind.picks_frames:
        a, b = args.range if args.range is not None else (0, None)
        every = args.every if args.every is not None else kind.default_every(plan.n_steps)
        positions = tuple(kind.select(plan.n_steps, a, b, every, args.reverse))
    path = None
    if kind.destination == exports.FILE:
        if not args.output:
            raise BadParameterError(f"{kind.key} writes a file: give --output FILE")
        path = kind.target(args.output)
        _check_output(path, args.overwrite)
    elif not args.comfyui:
        raise BadParameterError(f"{kind.key} writes into ComfyUI's input folder: give --comfyui FOLDER")
    options = exports.options_from_cli(kind, args)
    options.update(comfy_root=args.comfyui or "", stem=args.name or session.export_stem())
    source = session.export_source()
    kind.check(source)
    what = f"{len(positions)} of {plan.n_steps} steps" if kind.picks_frames else f"{plan.n_steps} steps"
    if args.max_memory and kind.key in ("latent", "comfyui"):
        from .core.export import check_memory_cap

        check_memory_cap(plan, args.max_memory, 0, "--max-memory")
    print(f"{kind.label}: {plan.spec.family.name}, {what} -> {printable(path or args.comfyui)}", file=sys.stderr)
    job = exports.export_job(kind.key, source, path, positions, args.overwrite, options)
    print(f"wrote {printable(job(_Progress(label='exporting')))}", file=sys.stderr)
    return 0


def _g(v) -> str:
    return "?" if v is None else f"{v:.4g}"


def cmd_info(args) -> int:
    from .core.inputs import is_latent_file

    path = args.file
    shown = printable(path)
    from .cli_pictures import cmd_info_picture, is_picture_or_workflow

    if is_picture_or_workflow(path):
        return cmd_info_picture(args)
    if is_latent_file(path):
        from .core.latent_io import latent_summary

        doc = latent_summary(path)  # streamed: one chunk in memory, whatever the file's size
        if args.json:
            print(json.dumps(doc))
            return 0
        print(f"{shown}: {doc['kind']} file")
        print(f"  shape   {doc['shape']}  (stored {doc['stored_dtype']}, read as float32)")
        print(f"  marker  {'latent_format_version_0 present' if doc['marker'] else 'missing'}"
              f"  multiplier {doc['multiplier']!r}")
        if doc.get("values_skipped"):
            print(f"  values  {doc['values_skipped']}")
        elif doc["min"] is not None:
            print(f"  values  min {_g(doc['min'])}  max {_g(doc['max'])}  mean {_g(doc['mean'])}  "
                  f"std {doc['std'] if doc['std'] is None else round(doc['std'], 4)}")
        if doc["nonfinite"]:
            print(f"  WARNING {doc['nonfinite']} NaN/Inf values")
        if doc["sha256"]:
            print(f"  sha256  {doc['sha256']}")
        u = doc["unsampler"]
        if u:
            keys = ("family", "model", "sampler", "scheduler", "steps", "start_at_step", "end_at_step", "seed",
                    "noise", "formula", "normalize", "frames")
            print("  unsampler export: " + ", ".join(f"{k}={printable(u.get(k), 80)}" for k in keys if k in u))
            src = u.get("source") or {}
            if src.get("name"):
                print(f"  source  {printable(src.get('name'), 200)} sha256 {printable(src.get('sha256'), 80)}")
        for note in doc.get("notes") or ():
            print(f"  note    {printable(note)}")
        return 0
    from .core.detect import detect_model

    det = detect_model(path, shift=args.shift, prediction=args.prediction)
    doc = det.to_json()
    if args.json:
        print(json.dumps(doc))
        return 0
    fam = det.family_obj
    print(f"{shown}: {doc.get('kind')} -> {det.family} ({printable(fam.display_name)})")
    print(f"  prediction {det.prediction}  shift {det.shift}  sampling {fam.sampling.kind}  "
          f"latent {fam.latent.name} ({fam.latent.channels} ch, scale {fam.latent.scale_factor})")
    for ev in det.evidence:
        print(f"  evidence: {printable(ev)}")
    if getattr(det, "overrides", None):
        print(f"  overrides: {det.overrides}")
    return 0


def cmd_families(args) -> int:
    from .core.families import all_families
    from .core.family_format import definition_of

    fams = all_families()
    if args.json:  # every family in the family file format: start a file of your own from any entry
        print(json.dumps([definition_of(f) for f in fams]))
        return 0
    if args.markdown:
        print(families_markdown(fams))
        return 0
    for f in fams:
        where = "" if f.builtin else f"  (user: {f.source})"
        print(f"{f.name:<28} {f.display_name:<32} {f.model_type:<17} {f.latent.channels:>3}ch "
              f"{f.latent.dimensions}D scale {f.latent.scale_factor}{where}")
    return 0


def families_markdown(fams) -> str:
    """The families as a Markdown table (the README's list is this, for the built-in families)."""
    rows = ["| name | model | ComfyUI class | sampling | shift | latent | scale factor |",
            "|---|---|---|---|---|---|---|"]
    for f in fams:
        s, lat = f.sampling, f.latent
        kind = f"{s.kind}, {s.prediction}" + (f", noise_scale {s.noise_scale:g}" if s.noise_scale != 1 else "") + \
            (", zsnr" if s.zsnr else "")
        shift = f"{s.shift:g}" if s.has_shift else "–"
        latent = f"{lat.name}, {lat.channels} ch, {'video' if lat.dimensions == 3 else 'image'}"
        rows.append(f"| `{f.name}` | {f.display_name} | {f.comfy_class or '–'} | {kind} | {shift} | {latent} | "
                    f"{lat.scale_factor:g} |")
    return "\n".join(rows)


def _families_option(p: argparse.ArgumentParser, dest: str, default) -> None:
    p.add_argument("--families", action="append", dest=dest, default=default, metavar="PATH",
                   help="also load the model families of this JSON file, or of every *.json in this folder "
                        "(repeatable; <config>/families/*.json are always loaded)")


class _CommandParser(_Parser):
    """A command's parser: it takes ``--families`` too, so the option works after the command as well."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _families_option(self, "families_after", argparse.SUPPRESS)


def load_user_families(args) -> None:
    """Install the registry: built-in families, ``<config>/families/*.json``, then every ``--families`` path.

    A file that cannot be used is skipped whole, with one warning line naming the file and the field."""
    from .core.family_files import reload_families

    paths = list(getattr(args, "families_before", None) or []) + list(getattr(args, "families_after", None) or [])
    for problem in reload_families(paths).problems:
        print(f"unsampler: warning: skipped {printable(problem)}", file=sys.stderr)


# ---- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="unsampler", description="ComfyUI's BatchUnsampler, on the command line.")
    p.add_argument("--version", action="version", version=f"unsampler {__version__}")
    _families_option(p, "families_before", None)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    from .core import params

    sp = sub.add_parser("sigmas", help="print a schedule and the node's slice")
    params.add_cli_options(sp, params.SIGMAS)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--text", action="store_true", help="ManualSigmas-safe text of the full schedule")
    sp.set_defaults(func=cmd_sigmas)

    sp = sub.add_parser("run", help="unsample a latent into a .latent batch")
    sp.add_argument("--latent", default=None, help="input .latent or .safetensors (or --image PICTURE)")
    cli_pictures.add_image_args(sp)
    params.add_cli_options(sp, params.RUN)
    sp.add_argument("--output", "-o", required=True, help="the .latent to write")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    sp.add_argument("--range", type=parse_range, default=None, metavar="A:B", help="only steps A..B-1 (node order)")
    sp.add_argument("--every", type=int, default=1, metavar="K", help="only every K-th step")
    sp.add_argument("--reverse", action="store_true", help="write high noise first")
    sp.add_argument("--max-memory", type=parse_size, default=None, metavar="SIZE",
                    help="cap the memory used while writing (e.g. 2G); the output streams to disk")
    sp.add_argument("--allow-nonfinite", action="store_true", help="go on with NaN/Inf in the latent (zeroed)")
    sp.add_argument("--chunk", type=parse_count, default=0, help=argparse.SUPPRESS)
    sp.add_argument("--threads", type=parse_threads, default=0, help="CPU threads (default: all cores)")
    sp.set_defaults(func=cmd_run)

    from .core import exports

    sp = sub.add_parser("export", help="write any export the app writes (a .latent batch or part of it, into "
                                       "ComfyUI's input folder, the sigmas, a contact sheet, an animation)")
    sp.add_argument("kind", choices=list(exports.EXPORTS), metavar="KIND",
                    help="; ".join(f"{k.key}: {k.label}" for k in exports.EXPORTS.values()))
    sp.add_argument("--latent", required=True, help="input .latent or .safetensors")
    params.add_cli_options(sp, params.EXPORT)
    sp.add_argument("--output", "-o", help="the file to write (every kind but comfyui)")
    sp.add_argument("--comfyui", metavar="FOLDER", help="comfyui: the ComfyUI install whose input folder gets it")
    sp.add_argument("--name", help="comfyui: the file name's start (default: latent_family_scheduler_frames)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    sp.add_argument("--range", type=parse_range, default=None, metavar="A:B", help="only steps A..B-1 (node order)")
    sp.add_argument("--every", type=int, default=None, metavar="K",
                    help="only every K-th step (default 1; pictures: enough to show about 64 or 120)")
    sp.add_argument("--reverse", action="store_true", help="high noise first")
    sp.add_argument("--max-memory", type=parse_size, default=None, metavar="SIZE",
                    help="cap the memory a streamed .latent export holds (e.g. 2G)")
    sp.add_argument("--allow-nonfinite", action="store_true", help="go on with NaN/Inf in the latent (zeroed)")
    exports.add_cli_options(sp)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("info", help="describe a latent file, a checkpoint, or a picture's ComfyUI settings")
    sp.add_argument("file")
    cli_pictures.add_info_args(sp)
    sp.add_argument("--json", action="store_true")
    params.add_cli_options(sp, params.INFO)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("families", help="list the model families (built-in and your own), --json in the family "
                                         "file format")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="every family's full definition, in the family file format")
    g.add_argument("--markdown", action="store_true", help="a Markdown table")
    sp.set_defaults(func=cmd_families)
    cli_pictures.add_commands(sub)
    return p


def main(argv: Optional[list] = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate in a file name prints as \udcff, never fails
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    parser = build_parser()
    args = parser.parse_args(argv)
    old = _install_signals()
    try:
        return _run(args)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _run(args) -> int:
    from .core.errors import Cancelled, UnsamplerError

    try:
        load_user_families(args)
        return int(args.func(args) or 0)
    except Cancelled as e:
        print(f"unsampler: {e}", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, _Stopped) else signal.SIGINT
        why = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        print(f"\nunsampler: {why}; nothing was written", file=sys.stderr)
        return 128 + int(signum)
    except (UnsamplerError, ValueError) as e:
        print(f"unsampler: error: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except Exception as e:  # an unexpected failure: one line here, the traceback in the log
        path = _log_path()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} unsampler {' '.join(sys.argv[1:])}\n")
                f.write(traceback.format_exc())
        except OSError:
            path = "(no log: the cache folder is not writable)"
        print(f"unsampler: internal error: {type(e).__name__}: {printable(e, 200)} (details in {printable(path)})",
              file=sys.stderr)
        return EXIT_INTERNAL


def console_main() -> None:
    """The ``unsampler`` program: ``main()``, then the process ends at once.

    Everything the command wrote is closed (and, for a file, fsynced and renamed) by then; what is
    skipped is the interpreter's own teardown, which with torch loaded takes about 0.3 s (freeing every
    module and object one by one) and does nothing a user needs. ``main()`` itself returns normally, for
    callers in the same process.
    """
    rc = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(rc)


if __name__ == "__main__":
    console_main()
