"""``unsampler``: the headless command line, built on the core.

    unsampler sigmas --model SDXL --scheduler karras --steps 30 [--start A] [--end B] [--json]
    unsampler run --model Flux --latent in.latent --steps 1000 --seed 1 --output out.latent
    unsampler info FILE [--json]
    unsampler families [--json]

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

from . import __version__
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


def parse_shift(text: str) -> float:
    """A shift override: a finite number in ComfyUI's range (see ``core.overrides``)."""
    from .core.errors import BadParameterError
    from .core.overrides import check_shift

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return check_shift(value)
    except BadParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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


def resolve_model(text: str, shift=None, prediction=None):
    """A family name, a checkpoint file or a diffusers folder -> (Family, what the user named)."""
    from .core.detect import resolve_model as detect
    from .core.overrides import check_shift

    fam = detect(text, shift=shift, prediction=prediction).family_obj
    if shift is not None:
        check_shift(shift, fam.sampling.kind)  # the family's own bound (a Flux shift overflows sooner)
    return fam, text


def _fmt(v: float) -> str:
    import numpy as np

    return repr(float(np.float32(v)))


# ---- commands ---------------------------------------------------------------------------------


def cmd_sigmas(args) -> int:
    from .core.sigmas import ksampler_sigmas, node_slice, sigmas_document, slice_bounds

    fam, model = resolve_model(args.model, args.shift, args.prediction)
    if args.json:
        print(json.dumps(sigmas_document(fam, args.sampler, args.scheduler, args.steps, args.start, args.end,
                                         model=model)))
        return 0
    schedule = ksampler_sigmas(fam, args.sampler, args.scheduler, args.steps)
    s, e = slice_bounds(args.steps, args.start, args.end)
    raw = node_slice(fam, schedule, args.steps, args.start, args.end)[1].tolist()  # the node's float32 division
    if args.text:
        from .core.sigma_format import manual_sigmas_text

        print(manual_sigmas_text(schedule.tolist()))
        return 0
    print(f"# {fam.name} ({fam.display_name}) {args.sampler}/{args.scheduler}, {args.steps} steps, "
          f"slice [{s}:{e}] -> {e - s} frames, scale_factor {fam.latent.scale_factor}")
    print(f"{'step':>6} {'sigma (model)':>16} {'raw = sigma/scale':>18}  frame")
    for k, v in enumerate(schedule.tolist()):
        frame = f"{e - 1 - k}" if s <= k < e else ""
        rawv = _fmt(raw[e - 1 - k]) if frame else ""
        print(f"{k:>6} {_fmt(v):>16} {rawv:>18}  {frame}")
    if s >= e:
        print("# the slice is empty: the node would produce no latents", file=sys.stderr)
    return 0


class _Progress:
    """A text progress bar on stderr, at most ~10 updates a second (a core Reporter, duck-typed)."""

    def __init__(self, stream=sys.stderr, label: str = "unsampling"):
        self.stream, self.label = stream, label
        self.t0 = time.monotonic()
        self.last = 0.0
        self.tty = stream.isatty()
        self.cancelled = False

    def is_cancelled(self) -> bool:
        return self.cancelled

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < (0.1 if self.tty else 2.0):
            return
        self.last = now
        frac = done / max(1, total)
        el = now - self.t0
        eta = el / frac - el if frac > 0 else 0
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {done}/{total} {el:5.1f}s eta {eta:5.1f}s"
        self.stream.write(("\r" if self.tty else "") + line + ("" if self.tty and done < total else "\n"))
        self.stream.flush()

    def partial(self, start, stop, frames) -> None:
        pass

    def message(self, text: str) -> None:
        self.stream.write(f"\n{text}\n")


def cmd_run(args) -> int:
    from .core.export import select_positions
    from .core.latent_io import read_latent
    from .core.unsample import UnsampleSpec, plan_unsample, run_unsample

    fam, model = resolve_model(args.model, args.shift, args.prediction)
    lat = read_latent(args.latent, allow_nonfinite=args.allow_nonfinite)
    tensor = lat.tensor
    if lat.nonfinite:
        import torch

        print(f"warning: replacing {lat.nonfinite} NaN/Inf values of the latent with 0", file=sys.stderr)
        tensor = torch.nan_to_num(tensor, nan=0.0, posinf=0.0, neginf=0.0)
    spec = UnsampleSpec(family=fam, latent=tensor, sampler=args.sampler, scheduler=args.scheduler,
                        steps=args.steps, start_at_step=args.start, end_at_step=args.end, normalize=args.normalize,
                        seed=args.seed, noise=args.noise, formula=args.formula, device=args.device,
                        chunk_frames=args.chunk, threads=args.threads,
                        source_name=os.path.basename(args.latent), source_sha256=lat.sha256, model_source=model)
    plan = plan_unsample(spec)
    if args.range is not None or args.every != 1 or args.reverse:
        a, b = args.range if args.range is not None else (0, None)
        spec = spec.replace(frames=tuple(select_positions(plan.n_steps, a, b, args.every, args.reverse)))
        plan = plan_unsample(spec)
    if os.path.lexists(args.output) and not args.overwrite and not os.path.isdir(args.output):
        from .core.errors import ResourceError

        raise ResourceError(f"{args.output} already exists; pass --overwrite to replace it")
    from .core.atomic import check_target

    check_target(args.output, args.overwrite)  # a folder, a FIFO or a device is never replaced
    if args.max_memory:
        from .core.export import check_memory_cap

        check_memory_cap(plan, args.max_memory, args.threads, "--max-memory")
    print(f"{fam.name}: {plan.describe()} -> {printable(args.output)}", file=sys.stderr)
    res = run_unsample(spec, _Progress(), output=args.output, overwrite=args.overwrite, max_memory=args.max_memory)
    print(f"wrote {printable(res.path)} ({plan.out_shape[0]} latents {list(plan.out_shape)}) in {res.seconds:.2f}s "
          f"on {res.device}", file=sys.stderr)
    return 0


def _looks_like_latent(path: str) -> bool:
    from .core.errors import BadFileError
    from .core.latent_io import LATENT_KEY
    from .core.safetensors_io import read_header

    if os.path.isdir(path):
        return False
    if path.lower().endswith(".latent"):
        return True
    try:
        h = read_header(path)
    except BadFileError:
        return False
    shaped = [t for t in h.tensors.values() if len(t.shape) in (4, 5)]
    return LATENT_KEY in h.tensors or (len(h.tensors) <= 2 and len(shaped) == 1)


def _g(v) -> str:
    return "?" if v is None else f"{v:.4g}"


def cmd_info(args) -> int:
    path = args.file
    shown = printable(path)
    if _looks_like_latent(path):
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

    fams = all_families()
    if args.json:
        print(json.dumps([{"name": f.name, "display_name": f.display_name, "comfy_class": f.comfy_class,
                           "model_type": f.model_type, "sampling": f.sampling.kind, "shift": f.sampling.shift,
                           "latent_format": f.latent.name, "channels": f.latent.channels,
                           "dimensions": f.latent.dimensions, "scale_factor": f.latent.scale_factor,
                           "shift_factor": f.latent.shift_factor} for f in fams]))
        return 0
    for f in fams:
        print(f"{f.name:<18} {f.display_name:<28} {f.model_type:<17} {f.latent.channels:>3}ch "
              f"{f.latent.dimensions}D scale {f.latent.scale_factor}")
    return 0


# ---- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="unsampler", description="ComfyUI's BatchUnsampler, on the command line.")
    p.add_argument("--version", action="version", version=f"unsampler {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp, required=True):
        sp.add_argument("--model", required=required,
                        help="a family name (see 'unsampler families'), a checkpoint file or a diffusers folder")
        sp.add_argument("--shift", type=parse_shift, default=None,
                        help="override the model's shift (flow models; > 0, at most 100)")
        sp.add_argument("--prediction", default=None, help="override the prediction type (EPS, V_PREDICTION, ...)")

    def schedule_args(sp, steps_default):
        sp.add_argument("--sampler", default="euler")
        sp.add_argument("--scheduler", default="simple")
        sp.add_argument("--steps", type=int, default=steps_default)
        sp.add_argument("--start", type=int, default=0, help="start_at_step (default 0)")
        sp.add_argument("--end", type=int, default=10000, help="end_at_step (default 10000)")

    sp = sub.add_parser("sigmas", help="print a schedule and the node's slice")
    model_args(sp)
    schedule_args(sp, 10000)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--text", action="store_true", help="ManualSigmas-safe text of the full schedule")
    sp.set_defaults(func=cmd_sigmas)

    sp = sub.add_parser("run", help="unsample a latent into a .latent batch")
    model_args(sp)
    sp.add_argument("--latent", required=True, help="input .latent or .safetensors")
    schedule_args(sp, 10000)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--normalize", action="store_true", help="subtract the first latent's mean (the node's option)")
    sp.add_argument("--noise", default="independent", choices=("independent", "shared", "trajectory"))
    sp.add_argument("--formula", default="model", choices=("model", "legacy"))
    sp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
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

    sp = sub.add_parser("info", help="describe a latent file or a checkpoint")
    sp.add_argument("file")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--shift", type=parse_shift, default=None)
    sp.add_argument("--prediction", default=None)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("families", help="list the built-in model families")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_families)
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


if __name__ == "__main__":
    sys.exit(main())
