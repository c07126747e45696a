"""The picture commands of ``unsampler`` (registered by ``cli.py``):

    unsampler encode IMAGE --model M [--vae FILE] [--comfyui DIR] [--approximate] --output OUT.latent
    unsampler decode LATENT [--vae FILE | --taesd FILE] [--model M] [--frames 0,5,10:20] --output DIR_OR_PNG
    unsampler run --image IMAGE --model M [--vae FILE] ...      (encode, then unsample)
    unsampler info PICTURE_OR_WORKFLOW [--json]                  (size and the ComfyUI settings it carries)
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .core.errors import BadParameterError, ResourceError


def _progress(label: str):
    from .cli_progress import Progress as _Progress

    return _Progress(label=label)


def _comfyui_arg(sp) -> None:
    sp.add_argument("--comfyui", metavar="DIR", default=os.environ.get("UNSAMPLER_COMFYUI"),
                    help="a ComfyUI folder to search for VAEs, TAESDs and checkpoints (default: $UNSAMPLER_COMFYUI)")


def add_image_args(sp) -> None:
    """The options that let ``run`` start from a picture (``--image``) instead of a latent."""
    sp.add_argument("--image", metavar="PICTURE", default=None, help="start from a PNG, JPEG or WebP (encoded first)")
    sp.add_argument("--vae", metavar="FILE", default=None, help="the VAE to encode with (models/vae file, checkpoint "
                                                                 "or TAESD encoder); default: found for the model")
    sp.add_argument("--approximate", action="store_true",
                    help="with no VAE, use the approximate latent made from the latent preview (not a VAE encoding)")
    _comfyui_arg(sp)


def add_info_args(sp) -> None:
    _comfyui_arg(sp)


def parse_frames(text: str):
    """'0,5,10:20,-1' -> a selector of frame indices (Python slices, half-open, negatives from the end)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"no frames in {text!r}")
    out = []
    for p in parts:
        try:
            if ":" in p:
                bits = [int(b) if b else None for b in p.split(":")]
                if len(bits) > 3 or (len(bits) == 3 and bits[2] == 0):
                    raise ValueError
                out.append(slice(*bits))
            else:
                out.append(int(p))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a frame list: {text!r} (use e.g. 0,5,10:20)") from None
    return out


def select_frames(selector, n: int) -> list:
    idx = []
    for s in selector:
        if isinstance(s, slice):
            idx.extend(range(n)[s])
        else:
            if not -n <= s < n:
                raise BadParameterError(f"frame {s} is out of range: the latent has {n} frames")
            idx.append(s % n)
    if not idx:
        raise BadParameterError(f"the frame list selects none of the {n} frames")
    return idx


def _model(args):
    """The family ``--model`` names (with ``--shift``/``--prediction``), and its checkpoint file if it is one."""
    from .core.detect import resolve_model

    fam = resolve_model(args.model, shift=getattr(args, "shift", None),
                        prediction=getattr(args, "prediction", None)).family_obj
    return fam, (args.model if os.path.exists(args.model) else None)


def _encode(image: str, fam, checkpoint, args):
    from .core.vae import NoVaeFound, picture_latent

    rep = _progress("encoding")
    try:
        res = picture_latent(image, fam, vae_file=args.vae, checkpoint=checkpoint, comfy_root=args.comfyui,
                             allow_approximate=args.approximate, device=args.device, cancel=rep.is_cancelled,
                             progress=rep.progress)
    except NoVaeFound as e:
        raise NoVaeFound(f"{e} (--vae FILE, --comfyui DIR); or pass --approximate for the approximate latent made "
                         "from the latent preview") from None
    pic = res.picture
    x, y, w, h = res.crop
    crop = "" if (w, h) == (pic.width, pic.height) else f", cropped to {w}x{h} at ({x}, {y})"
    label = "APPROXIMATE latent" if res.method == "approximate" else f"encoded with {res.encoder}"
    print(f"{os.path.basename(image)}: {pic.width}x{pic.height} {pic.format}{crop}; {label}; latent "
          f"{list(res.latent.shape)}", file=sys.stderr)
    for note in res.notes:
        print(f"  note: {note}", file=sys.stderr)
    return res


def cmd_encode(args) -> int:
    from .core.latent_io import write_latent

    fam, checkpoint = _model(args)
    if os.path.exists(args.output) and not args.overwrite:
        raise ResourceError(f"{args.output} already exists; pass --overwrite to replace it")
    res = _encode(args.image, fam, checkpoint, args)
    meta = dict(res.metadata(), family=fam.name)
    path = write_latent(args.output, res.latent, metadata={"unsampler_picture": json.dumps(meta)},
                        overwrite=args.overwrite)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def image_latent(args, fam, model: str):
    """``run --image``: the picture's latent as the session's source (``core.inputs.picture_loaded``)."""
    from .core.inputs import picture_loaded

    res = _encode(args.image, fam, model if os.path.isfile(model) else None, args)
    return picture_loaded(res, fam)


def refuse_picture_as_latent(path: str) -> None:
    """A picture given where a latent belongs gets told what to do instead of a safetensors error."""
    from .core.vae.images import sniff_picture  # the one check, without the VAE's loaders and models

    if sniff_picture(path):
        raise BadParameterError(f"{os.path.basename(path)} is a picture, not a latent: use --image {path} (it is "
                                "encoded with the model's VAE), or 'unsampler encode' first")


def _decoder(args, fam):
    from .core.vae import load_taesd, load_vae, vae_choices, where_a_vae_goes

    if args.vae and args.taesd:
        raise BadParameterError("give --vae or --taesd, not both")
    if args.vae:
        return load_vae(args.vae, family=fam, device=args.device)
    if args.taesd:
        return load_taesd(decoder=args.taesd, family=fam, device=args.device)
    if fam is None:
        raise BadParameterError("name a VAE to decode with: --vae FILE or --taesd FILE (or --model with a checkpoint)")
    choices, _ = vae_choices(fam, checkpoint=getattr(args, "_checkpoint", None), comfy_root=args.comfyui)
    choices = [c for c in choices if c.can_decode]
    if not choices:
        raise BadParameterError(f"no VAE found to decode with: {where_a_vae_goes(fam, args.comfyui)}")
    return choices[0].load(family=fam, device=args.device)


def _targets(output: str, stem: str, frames: list, overwrite: bool) -> list:
    if output.lower().endswith(".png"):
        if len(frames) != 1:
            raise BadParameterError(f"{len(frames)} frames to write: give a folder as --output, or one frame")
        targets = [output]
    else:
        if os.path.exists(output) and not os.path.isdir(output):
            raise ResourceError(f"{output} is not a folder")
        os.makedirs(output, exist_ok=True)
        targets = [os.path.join(output, f"{stem}_{i:05d}.png") for i in frames]
    if not overwrite:
        taken = [t for t in targets if os.path.exists(t)]
        if taken:
            raise ResourceError(f"{taken[0]} already exists; pass --overwrite to replace it")
    return targets


def cmd_decode(args) -> int:
    from .core.latent_io import read_latent
    from .core.vae import decode_to_uint8, fits, save_png

    fam = None
    if args.model:
        fam, args._checkpoint = _model(args)
    refuse_picture_as_latent(args.latent)
    lat = read_latent(args.latent)
    frames = select_frames(args.frames, lat.shape[0]) if args.frames else list(range(lat.shape[0]))
    stem = os.path.splitext(os.path.basename(args.latent))[0]
    targets = _targets(args.output, stem, frames, args.overwrite)
    vae = _decoder(args, fam)
    if fam is not None and fits(vae, fam):
        raise BadParameterError(fits(vae, fam))
    vae.check_latent(lat.tensor)
    rep = _progress("decoding")
    print(f"decoding {len(frames)} frame(s) with {vae.label} on {vae.device}", file=sys.stderr)
    for n, (i, target) in enumerate(zip(frames, targets)):
        rgb = decode_to_uint8(vae, lat.tensor[i:i + 1], time_index=args.time_index, cancel=rep.is_cancelled,
                              progress=lambda d, t, n=n: rep.progress(n * t + d, len(frames) * t))
        save_png(target, rgb[0], overwrite=args.overwrite)
    print(f"wrote {targets[0]}" + (f" ... {targets[-1]}" if len(targets) > 1 else ""), file=sys.stderr)
    return 0


def is_picture_or_workflow(path: str) -> bool:
    from .core.vae import sniff_picture

    return sniff_picture(path) or (path.lower().endswith(".json") and os.path.isfile(path))


def picture_info(path: str, comfy_root=None) -> dict:
    """What ``unsampler info`` says of a picture or workflow file: size and the ComfyUI settings it carries."""
    from .core import comfy_paths
    from .core.vae import comfyui_settings, read_picture, sniff_picture

    doc = {"path": path}
    if sniff_picture(path):
        pic = read_picture(path)
        doc.update(kind="picture", format=pic.format, width=pic.width, height=pic.height, frames=pic.frames)
    else:
        doc["kind"] = "workflow"
    settings = comfyui_settings(path)
    if settings is not None:
        doc["comfyui"] = dict(settings.values)
        doc["comfyui_graph"] = settings.graph
        doc["comfyui_sources"] = dict(settings.sources)
        doc["comfyui_notes"] = list(settings.notes)
        if comfy_root and "model" in settings.values and settings.model_kind:
            found = comfy_paths.find_model_file(comfy_root, settings.model_kind, settings.values["model"])
            doc["comfyui_model_path"] = str(found) if found else None
    return doc


def cmd_info_picture(args) -> int:
    doc = picture_info(args.file, getattr(args, "comfyui", None))
    if args.json:
        print(json.dumps(doc))
        return 0
    size = f"{doc['width']}x{doc['height']} {doc['format']}" if doc["kind"] == "picture" else "workflow"
    print(f"{args.file}: {size}" + (f", {doc['frames']} frames (the first is used)" if doc.get("frames", 1) > 1
                                    else ""))
    if "comfyui" not in doc:
        print("  no ComfyUI graph (no prompt or workflow text chunk)")
        return 0
    for k, v in doc["comfyui"].items():
        print(f"  {k:<14} {v}  ({doc['comfyui_sources'].get(k)}, {doc['comfyui_graph']})")
    if "comfyui_model_path" in doc:
        print(f"  model file     {doc['comfyui_model_path'] or 'not found in the ComfyUI folder'}")
    for note in doc["comfyui_notes"]:
        print(f"  note: {note}")
    return 0


def add_commands(sub) -> None:
    """Register ``encode`` and ``decode``."""
    sp = sub.add_parser("encode", help="encode a picture into a .latent with the model's VAE")
    sp.add_argument("image", help="a PNG, JPEG or WebP")
    sp.add_argument("--model", required=True, help="a family name, a checkpoint file or a diffusers folder")
    sp.add_argument("--vae", metavar="FILE", default=None,
                    help="the VAE: a models/vae file, a checkpoint or a TAESD encoder (default: found for the model)")
    sp.add_argument("--approximate", action="store_true",
                    help="with no VAE, write the approximate latent made from the latent preview (not a VAE encoding)")
    sp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sp.add_argument("--output", "-o", required=True, help="the .latent to write")
    sp.add_argument("--overwrite", action="store_true")
    _comfyui_arg(sp)
    sp.set_defaults(func=cmd_encode)

    sp = sub.add_parser("decode", help="decode latent frames into PNG pictures with a VAE or TAESD")
    sp.add_argument("latent", help="a .latent or safetensors latent")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--vae", metavar="FILE", default=None, help="a models/vae file or a checkpoint with its VAE")
    g.add_argument("--taesd", metavar="FILE", default=None, help="a TAESD decoder (models/vae_approx), fast")
    sp.add_argument("--model", default=None, help="the family (or checkpoint) of the latent")
    sp.add_argument("--frames", type=parse_frames, default=None, metavar="LIST",
                    help="which frames, e.g. 0,5,10:20 (default: all)")
    sp.add_argument("--time-index", type=int, default=0, help="for video latents: the latent time index to show")
    sp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sp.add_argument("--output", "-o", required=True, help="a .png for one frame, or a folder")
    sp.add_argument("--overwrite", action="store_true")
    _comfyui_arg(sp)
    sp.set_defaults(func=cmd_decode)
