"""ComfyUI's folders: which folder the user means (an install, ComfyUI Desktop's user folder, or the folder a
model-paths file names), where LoadLatent looks (the top level of ``<ComfyUI>/input``), and the model folders
ComfyUI's ``folder_paths`` searches (with ``extra_model_paths.yaml``)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import BadParameterError


#: The folders of a ComfyUI user folder (ComfyUI Desktop's "base path", or a git install's own folder).
USER_FOLDER_PARTS = ("input", "output", "models", "user", "custom_nodes")
#: The model-paths files a folder may hold: ComfyUI's own, and the one ComfyUI Desktop writes.
CONFIG_NAMES = ("extra_model_paths.yaml", "extra_models_config.yaml")
ACCEPTED = ("choose ComfyUI's folder: a git or portable install (it holds main.py), ComfyUI Desktop's user folder "
            "(input/, output/, models/, user/, custom_nodes/), or an extra_model_paths.yaml that names one")


def looks_like_comfyui(root) -> bool:
    """A git or portable install: ``main.py`` beside ``comfy/`` (or ``nodes.py``)."""
    r = Path(root)
    return (r / "main.py").is_file() and ((r / "comfy").is_dir() or (r / "nodes.py").is_file())


def looks_like_user_folder(root) -> bool:
    """ComfyUI Desktop's user folder: ``input/`` and ``models/`` with ``output/``, ``user/`` or ``custom_nodes/``
    beside them, and no ``main.py`` (the code lives in the Desktop app)."""
    r = Path(root)
    have = {name for name in USER_FOLDER_PARTS if (r / name).is_dir()}
    return {"input", "models"} <= have and len(have) >= 3


@dataclass(frozen=True)
class ComfyFolder:
    """A ComfyUI folder as the user named it: ``root`` holds ``input/``, ``output/`` and ``models/``; ``kind`` is
    ``install``, ``desktop`` or ``config`` (reached through a model-paths file, ``config``)."""
    root: Path
    kind: str
    config: Optional[Path] = None

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    def start_folder(self, what: str) -> Optional[Path]:
        """Where an open dialog starts: ``latent`` -> ``output/latents`` (SaveLatent's folder), then ``input``;
        ``checkpoint`` -> the first existing checkpoints folder (``models/checkpoints``, then the config's)."""
        if what == "latent":
            candidates = [self.root / "output" / "latents", self.input_dir, self.root / "output"]
        elif what == "checkpoint":
            candidates = _model_dirs(self, "checkpoints") + _model_dirs(self, "diffusion_models")
        else:
            candidates = [self.root]
        return next((c for c in candidates if c.is_dir()), None)


def _config_base(config: Path) -> Optional[Path]:
    """The folder a model-paths file names: the ``base_path`` of its ``is_default`` section, else of the first
    section that has one, that is a ComfyUI folder; None when it names none."""
    sections = _read_yaml(config)[0]
    if not isinstance(sections, dict):
        return None
    ordered = sorted((c for c in sections.values() if isinstance(c, dict)), key=lambda c: not c.get("is_default"))
    for conf in ordered:
        base = conf.get("base_path")
        if isinstance(base, str) and base.strip():
            b = _expand(base, config.parent.resolve())
            for cand in (b, b.parent):  # a base_path may name the models folder itself
                if looks_like_comfyui(cand) or looks_like_user_folder(cand):
                    return cand
    return None


def resolve_comfy_folder(path) -> ComfyFolder:
    """The ComfyUI folder the user chose: an install (or its ``input``), a Desktop user folder, a model-paths file
    (``extra_model_paths.yaml``, Desktop's ``extra_models_config.yaml``) or a folder holding one, followed to the
    folder its ``base_path`` names. A clear ``BadParameterError`` otherwise."""
    r = Path(os.path.expanduser(str(path).strip()))
    if r.is_file() and r.suffix.lower() in (".yaml", ".yml"):
        base = _config_base(r)
        if base is None:
            raise BadParameterError(f"{r.name} names no ComfyUI folder (no base_path that holds input/ and models/ "
                                    "or main.py); " + ACCEPTED)
        return ComfyFolder(base, "install" if looks_like_comfyui(base) else "desktop", r)
    if r.name == "input" and (looks_like_comfyui(r.parent) or looks_like_user_folder(r.parent)):
        r = r.parent
    if not r.is_dir():
        raise BadParameterError(f"{r} is not a folder; " + ACCEPTED)
    if looks_like_comfyui(r):
        return ComfyFolder(r, "install")
    if looks_like_user_folder(r):
        return ComfyFolder(r, "desktop")
    for name in CONFIG_NAMES:
        if (r / name).is_file():
            base = _config_base(r / name)
            if base is not None:
                return ComfyFolder(base, "install" if looks_like_comfyui(base) else "desktop", r / name)
    raise BadParameterError(f"{r} does not look like a ComfyUI folder (no main.py, no input/ and models/ folders, "
                            "no extra_model_paths.yaml); " + ACCEPTED)


def comfy_input_dir(root) -> Path:
    """The ``input`` folder of a ComfyUI folder (created if missing); see ``resolve_comfy_folder``."""
    inp = resolve_comfy_folder(root).input_dir
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
    """The ComfyUI folder (see ``resolve_comfy_folder``), or any folder that holds ``models/``."""
    try:
        return resolve_comfy_folder(root).root
    except BadParameterError:
        r = Path(os.path.expanduser(str(root)))
        if r.is_dir() and (r / "models").is_dir():
            return r
        raise


def _expand(value: str, here: Path) -> Path:
    v = os.path.expandvars(os.path.expanduser(value))
    return Path(os.path.normpath(v if os.path.isabs(v) else str(here / v)))


def _read_yaml(path: Path) -> tuple:
    """``(parsed or None, [warning])``: bounded in size, any YAML error one warning."""
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            return None, [f"{path.name} is over {MAX_YAML_BYTES} bytes; not read"]
        import yaml

        return yaml.safe_load(path.read_text(encoding="utf-8")), []
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, [f"{path.name} cannot be read ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})"]
    except Exception as e:  # noqa: BLE001 - yaml's errors (and a nesting bomb) become one warning
        return None, [f"{path.name} is not valid YAML ({type(e).__name__})"]


def extra_model_paths(root, config=None) -> tuple:
    """``({kind: [folders]}, [warnings])`` from ``<ComfyUI>/extra_model_paths.yaml`` (or the file ``config``), as
    ComfyUI's ``utils/extra_config.load_extra_path_config`` reads it: each section may name a ``base_path``
    (relative to the file's folder, ``~`` and ``$VARS`` expanded); every other key is a folder kind whose value holds
    one path per line, relative to the base path (or to the file's folder). A bad file or entry is a warning, never
    an error."""
    path = Path(config) if config is not None else Path(root) / EXTRA_PATHS_FILE
    found: dict = {}
    if not path.is_file():
        return found, []
    config, problems = _read_yaml(path)
    if problems:
        return found, problems
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


def _model_dirs(folder: ComfyFolder, kind: str) -> list:
    """The existing folders ComfyUI searches for ``kind``: ``<root>/models/<folder>``, then the model-paths files'
    (the root's ``extra_model_paths.yaml``, and the file the folder was reached through)."""
    dirs = [folder.root / "models" / name for name in MODEL_FOLDERS.get(kind, (kind,))]
    configs = [None] + ([folder.config] if folder.config is not None else [])
    for config in configs:
        dirs += extra_model_paths(folder.root, config)[0].get(kind, [])
    out = []
    for f in dirs:
        if f.is_dir() and f not in out:
            out.append(f)
    return out


def model_folders(root, kind: str) -> list:
    """The existing folders ComfyUI searches for ``kind`` (``vae``, ``vae_approx``, ``checkpoints``,
    ``diffusion_models``): ``<ComfyUI>/models/<folder>``, then those of extra_model_paths.yaml."""
    if kind not in MODEL_FOLDERS:
        raise BadParameterError(f"unknown model folder kind {kind!r}")
    try:
        folder = resolve_comfy_folder(root)
    except BadParameterError:
        folder = ComfyFolder(comfy_root(root), "models")
    return _model_dirs(folder, kind)


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
