"""User family files: ``<config>/families/*.json`` and ``--families PATH``, loaded into a new registry.

A file holds one family definition (``family_format.py``), a list of them, or an object of them keyed by
name (what ``unsampler families --json`` prints can be cut down to any of these). A file is taken whole or
not at all: one bad field, or a name that is already a family, skips the file with a message that names the
file and the field, and every other family (the built-in ones first) still works. Loading builds a new
immutable ``Registry``; the one in use changes only when the caller installs it (``reload_families``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from .config_dir import families_dir
from .errors import BadFileError
from .families import Family, Registry, builtin_registry, name_key, use_registry
from .family_format import FamilyDefinitionError, definition_of, family_from_definition

MAX_FILE_BYTES = 4 << 20
_WRAPPER_KEYS = {"families", "format", "source", "class_defaults"}
_DEFINITION_KEYS = {"name", "sampling", "latent"}


class FamilyFileError(BadFileError):
    """A family file that cannot be used; the message names the file and the field."""


def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _entries(data, where: str = "") -> List[Tuple[str, object]]:
    """The definitions of a file's JSON value, each with the field prefix that locates it in the file."""
    if isinstance(data, list):
        return [(f"{where}[{i}].", d) for i, d in enumerate(data)]
    if isinstance(data, dict):
        if "families" in data and set(data) <= _WRAPPER_KEYS:
            return _entries(data["families"], f"{where}families")
        if _DEFINITION_KEYS & set(data):
            return [(where + "." if where else "", data)]
        out = []
        for key, d in data.items():
            prefix = f"{where}.{key}." if where else f"{key}."
            if isinstance(d, dict):
                if "name" not in d:
                    d = {"name": key, **d}
                elif d["name"] != key:
                    raise FamilyDefinitionError(f"{prefix}name", f"{d['name']!r} differs from its key {key!r}")
            out.append((prefix, d))
        return out
    raise FamilyDefinitionError(where or "file", "must hold a family definition (an object), a list of them, "
                                                 "or an object of them keyed by name")


def read_family_file(path) -> Tuple[Family, ...]:
    """The families of one file; raises ``FamilyFileError`` naming the file and the field."""
    path = Path(path)
    shown = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FamilyFileError(f"{shown}: {size} bytes is too large for a family file (at most {MAX_FILE_BYTES})")
        text = path.read_bytes().decode("utf-8-sig")
    except FamilyFileError:
        raise
    except UnicodeDecodeError:
        raise FamilyFileError(f"{shown}: not a UTF-8 text file") from None
    except OSError as e:
        raise FamilyFileError(f"{shown}: cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise FamilyFileError(f"{shown}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except ValueError as e:
        raise FamilyFileError(f"{shown}: not valid JSON ({e})") from None
    fams, seen = [], {}
    try:
        entries = _entries(data)
        if not entries:
            raise FamilyDefinitionError("file", "holds no family definition")
        for prefix, d in entries:
            try:
                fam = family_from_definition(d, source=shown)
            except FamilyDefinitionError as e:
                raise FamilyDefinitionError(prefix + e.field, e.problem) from None
            key = name_key(fam.name)
            if key in seen:
                raise FamilyDefinitionError(prefix + "name", f"{fam.name!r} is defined twice in this file")
            seen[key] = fam
            fams.append(fam)
    except FamilyDefinitionError as e:
        raise FamilyFileError(f"{shown}: {e.field}: {e.problem}") from None
    return tuple(fams)


def family_files(paths: Iterable) -> Tuple[List[Path], List[str]]:
    """The ``*.json`` files that paths (files or folders) stand for, in order, and a message per missing path."""
    files, problems = [], []
    for p in paths:
        p = Path(os.path.expanduser(os.fspath(p)))
        if p.is_dir():
            files.extend(sorted((f for f in p.iterdir() if f.suffix.lower() == ".json" and f.is_file()
                                 and not f.name.startswith(".")), key=lambda f: f.name.lower()))
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def load_registry(paths: Iterable = (), config: bool = True, base: Optional[Registry] = None) -> Registry:
    """The built-in families, then those of ``<config>/families/*.json`` (if ``config``), then ``paths``.

    Returns a new registry; files that cannot be used are left out whole and named in ``registry.problems``.
    """
    base = base or builtin_registry()
    sources = ([families_dir()] if config and families_dir().is_dir() else []) + list(paths)
    files, problems = family_files(sources)
    taken = {name_key(f.name): f for f in base}
    added, done = [], set()
    for f in files:
        real = os.path.realpath(f)
        if real in done:
            continue
        done.add(real)
        try:
            fams = read_family_file(f)
            for fam in fams:
                other = taken.get(name_key(fam.name))
                if other is not None:
                    where = f"a built-in family ({other.name})" if other.builtin else f"a family of {other.source}"
                    raise FamilyFileError(f"{f}: name: {fam.name!r} is already {where}; choose another name")
        except FamilyFileError as e:
            problems.append(str(e))
            continue
        for fam in fams:
            taken[name_key(fam.name)] = fam
        added.extend(fams)
    return base.with_families(added, problems)


def reload_families(paths: Iterable = (), config: bool = True) -> Registry:
    """Load (``load_registry``) and install the result as the registry in use; returns it."""
    reg = load_registry(paths, config)
    use_registry(reg)
    return reg


def family_file_text(fam: Family) -> str:
    """A family as the text of a family file (one definition), as ``unsampler families --json`` shows it."""
    return json.dumps(definition_of(fam), indent=1) + "\n"


def file_name_for(name: str) -> str:
    """The file name a family is saved under in ``<config>/families``."""
    return "".join(c if c.isalnum() or c in "_.+-" else "_" for c in name) + ".json"


def write_family_file(fam: Family, folder=None, overwrite: bool = False) -> Path:
    """Save a family as ``<folder>/<name>.json`` (default folder: ``<config>/families``), atomically."""
    from .atomic import atomic_write_text
    from .errors import ResourceError

    folder = Path(folder) if folder is not None else families_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResourceError(f"cannot create {folder}: {e.strerror or e}") from None
    text = family_file_text(fam)
    family_from_definition(json.loads(text))  # what is written reads back
    return Path(atomic_write_text(folder / file_name_for(fam.name), text, overwrite))
