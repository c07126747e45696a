"""Where ComfyUI keeps latents: LoadLatent lists the top level of ``<ComfyUI>/input``."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import BadParameterError


def looks_like_comfyui(root) -> bool:
    r = Path(root)
    return (r / "main.py").is_file() and ((r / "comfy").is_dir() or (r / "nodes.py").is_file())


def comfy_input_dir(root) -> Path:
    """The ``input`` folder of a ComfyUI install (created if missing). Accepts the install or its input folder."""
    r = Path(os.path.expanduser(str(root)))
    if r.name == "input" and looks_like_comfyui(r.parent):
        r = r.parent
    if not r.is_dir():
        raise BadParameterError(f"{r} is not a folder")
    if not looks_like_comfyui(r):
        raise BadParameterError(f"{r} does not look like a ComfyUI install (no main.py and comfy/ folder); "
                                "choose the folder that holds ComfyUI's main.py")
    inp = r / "input"
    try:
        inp.mkdir(exist_ok=True)
    except OSError as e:
        raise BadParameterError(f"cannot create {inp}: {e.strerror or e}") from None
    return inp


def safe_stem(stem: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "unsampler"
    return s[:80]


def unique_latent_name(folder, stem: str) -> Path:
    """``<stem>_00001_.latent`` with the next free counter, in SaveLatent's naming style.

    LoadLatent lists only names ending in lowercase ``.latent`` at the top of the input folder.
    """
    folder = Path(folder)
    stem = safe_stem(stem)
    pat = re.compile(re.escape(stem) + r"_(\d+)_?\.", re.IGNORECASE)
    top = 0
    if folder.is_dir():
        for name in os.listdir(folder):
            m = pat.match(name)
            if m:
                top = max(top, int(m.group(1)))
    return folder / f"{stem}_{top + 1:05d}_.latent"


# ---- model folders (ComfyUI's folder_paths and extra_model_paths.yaml) ----------------------------------------

#: Unsampler's model kinds -> the folders under ``<ComfyUI>/models`` that ComfyUI's folder_paths searches for them.
MODEL_FOLDERS = {"checkpoints": ("checkpoints",), "vae": ("vae",), "vae_approx": ("vae_approx",),
                 "diffusion_models": ("unet", "diffusion_models")}
#: folder_paths.map_legacy: old folder names in extra_model_paths.yaml.
LEGACY_KINDS = {"unet": "diffusion_models"}
EXTRA_PATHS_FILE = "extra_model_paths.yaml"
MAX_YAML_BYTES = 1 << 20
#: Bounds of a folder walk (ComfyUI walks its model folders recursively, following links).
MAX_FILES, MAX_DEPTH = 20000, 8


def comfy_root(root) -> Path:
    """The ComfyUI install folder, given the install or its ``input`` folder."""
    r = Path(os.path.expanduser(str(root)))
    if r.name == "input" and looks_like_comfyui(r.parent):
        r = r.parent
    if not r.is_dir():
        raise BadParameterError(f"{r} is not a folder")
    if not looks_like_comfyui(r) and not (r / "models").is_dir():
        raise BadParameterError(f"{r} does not look like a ComfyUI install (no main.py, no models folder)")
    return r


def extra_model_paths(root) -> tuple:
    """``({kind: [folders]}, [warnings])`` from ``<ComfyUI>/extra_model_paths.yaml``, as ComfyUI's
    ``utils/extra_config.load_extra_path_config`` reads it: each section may name a ``base_path`` (relative to the
    file's folder, ``~`` and ``$VARS`` expanded); every other key is a folder kind whose value holds one path per
    line, relative to the base path (or to the file's folder). A bad file or entry is a warning, never an error."""
    path = Path(root) / EXTRA_PATHS_FILE
    found: dict = {}
    if not path.is_file():
        return found, []
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            return found, [f"{path.name} is over {MAX_YAML_BYTES} bytes; not read"]
        import yaml

        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return found, [f"{path.name} cannot be read ({str(e).splitlines()[0][:100]})"]
    except Exception as e:  # noqa: BLE001 - yaml's errors (and a nesting bomb) become one warning
        return found, [f"{path.name} is not valid YAML ({type(e).__name__})"]
    if not isinstance(config, dict):
        return found, [] if config is None else [f"{path.name} does not hold sections of folders; ignored"]
    warnings = []
    here = path.parent.resolve()
    for section, conf in config.items():
        if conf is None:
            continue
        if not isinstance(conf, dict):
            warnings.append(f"{path.name}: section {str(section)[:40]!r} is not a mapping; ignored")
            continue
        base = conf.get("base_path")
        if base is not None and not isinstance(base, str):
            warnings.append(f"{path.name}: {str(section)[:40]}.base_path is not text; ignored")
            continue
        if base:
            base = os.path.expandvars(os.path.expanduser(base))
            base = base if os.path.isabs(base) else str(here / base)
        for kind, value in conf.items():
            if kind in ("base_path", "is_default"):
                continue
            if not isinstance(value, str):
                warnings.append(f"{path.name}: {str(section)[:40]}.{str(kind)[:40]} is not text; ignored")
                continue
            kind = LEGACY_KINDS.get(str(kind), str(kind))
            for line in value.split("\n"):
                line = line.strip()
                if line:
                    full = os.path.join(base, line) if base else (line if os.path.isabs(line) else str(here / line))
                    found.setdefault(kind, []).append(Path(os.path.normpath(full)))
    return found, warnings


def model_folders(root, kind: str) -> list:
    """The existing folders ComfyUI searches for ``kind`` (``vae``, ``vae_approx``, ``checkpoints``,
    ``diffusion_models``): ``<ComfyUI>/models/<folder>``, then those of extra_model_paths.yaml."""
    if kind not in MODEL_FOLDERS:
        raise BadParameterError(f"unknown model folder kind {kind!r}")
    r = comfy_root(root)
    folders = [r / "models" / name for name in MODEL_FOLDERS[kind]] + extra_model_paths(r)[0].get(kind, [])
    out = []
    for f in folders:
        if f.is_dir() and f not in out:
            out.append(f)
    return out


def list_model_files(root, kind: str, extensions) -> list:
    """``[(name, path)]`` of the files in the ``kind`` folders whose names end in ``extensions``, walked as
    ComfyUI does (recursively); ``name`` is the path below the folder, as ComfyUI's node menus show it."""
    exts = tuple(e.lower() for e in extensions)
    out, seen = [], set()
    for folder in model_folders(root, kind):
        base_depth = len(folder.parts)
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            if len(Path(dirpath).parts) - base_depth >= MAX_DEPTH:
                dirnames[:] = []
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if fn.lower().endswith(exts) and p not in seen:
                    seen.add(p)
                    out.append((p.relative_to(folder).as_posix(), p))
                    if len(out) >= MAX_FILES:
                        return out
    return out


def find_model_file(root, kind: str, name: str):
    """The file a workflow names (``ckpt_name``, ``unet_name``, ``vae_name``) in the ``kind`` folders, or None.

    Names use ``/`` or ``\\`` between folders; a name that leaves its folder (``..``) is never followed."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        return None
    rel = Path(*[p for p in name.replace("\\", "/").split("/") if p not in ("", ".")])
    if ".." in rel.parts or rel.is_absolute():
        return None
    for folder in model_folders(root, kind):
        p = folder / rel
        if p.is_file():  # links are followed, as ComfyUI follows them
            return p
    return None
