"""The model family registry: each family's model sampling and latent format, as data.

The built-in facts come from ComfyUI's own classes (see ``data/families.json`` and
``packaging/gen_family_data.py``); users add families as JSON files in the same format
(``family_format.py``, ``family_files.py``). Nothing here branches on a family name: a family is a
``Family`` value (``family_types.py``, re-exported here), and the code that uses it looks at its
``sampling.kind`` and latent fields.

A ``Registry`` is immutable. Loading user files builds a new one and swaps it in whole
(``use_registry``), so a bad file never leaves half of itself behind.

Name lookup (``Registry.get``), case-insensitive, with ``-``, ``_`` and spaces alike and dots ignored:

1. a family name;
2. a ComfyUI class name (``supported_models_class``): the family ComfyUI builds for that class when the state
   dict adds nothing (its ``model_type_without_state_dict`` and its own ``latent_format``). That is the family
   named as the class where there is one (``Flux2`` -> FLUX.2 dev, ``SDXL`` -> SDXL, ``SD20`` -> the EPS model);
   otherwise ``class_defaults`` of the data (``CogVideoX_T2V`` -> CogVideoX_2B, ``SeedVR2`` -> SeedVR2_3B);
   for a class only user families have, the first of them;
3. a display name.
"""
from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Iterable, Mapping, Optional

from .errors import BadParameterError
from .family_format import load_builtin
from .family_types import (ADDITIVE_PREDICTIONS, BUILTIN, FLOW_PREDICTIONS, OVERRIDE_PREDICTIONS,  # noqa: F401
                           PREDICTIONS, SAMPLING_KINDS, SHIFT_KINDS, Family, LatentFormat, Sampling)


def name_key(name: str) -> str:
    """The form names are compared in: lower case, ``-``/``_``/space alike, dots dropped."""
    return name.strip().lower().replace("-", "_").replace(" ", "_").replace(".", "")


class Registry:
    """An immutable set of families (built-in first, then the user's), with ComfyUI's class defaults.

    ``problems`` holds one message per user file that was skipped (the file and the field named).
    """

    def __init__(self, families: Iterable[Family], class_defaults: Optional[Mapping] = None,
                 problems: Iterable[str] = ()):
        fams = tuple(families)
        by_key = {}
        for f in fams:
            k = name_key(f.name)
            if k in by_key:
                raise ValueError(f"two families named {by_key[k].name!r} and {f.name!r}")
            by_key[k] = f
        self._families = fams
        self._by_key = MappingProxyType(by_key)
        self._class_defaults = MappingProxyType(dict(class_defaults or {}))
        self._class_keys = MappingProxyType({name_key(c): n for c, n in self._class_defaults.items()})
        self.problems = tuple(problems)

    @property
    def class_defaults(self) -> Mapping:
        return self._class_defaults

    def __iter__(self):
        return iter(self._families)

    def __len__(self) -> int:
        return len(self._families)

    def names(self) -> list:
        return [f.name for f in self._families]

    def find(self, name: str) -> Optional[Family]:
        """The family a name, a ComfyUI class name or a display name stands for, or None (see the module doc)."""
        key = name_key(name)
        if key in self._by_key:
            return self._by_key[key]
        if key in self._class_keys:
            return self._by_key[name_key(self._class_keys[key])]
        for f in self._families:
            if f.comfy_class and name_key(f.comfy_class) == key:
                return f
        for f in self._families:
            if name_key(f.display_name) == key:
                return f
        return None

    def get(self, name) -> Family:
        """Look a family up by name (see ``find``). A ``Family`` passes through unchanged."""
        if isinstance(name, Family):
            return name
        if not isinstance(name, str):
            raise BadParameterError(f"family must be a name, got {type(name).__name__}")
        fam = self.find(name)
        if fam is None:
            names = self.names()
            if len(names) <= 30:
                known = f"known families: {', '.join(names)}"
            else:
                close = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or difflib.get_close_matches(
                    name_key(name), [name_key(n) for n in names], n=5, cutoff=0.5)
                near = f"did you mean {', '.join(close)}? " if close else ""
                known = f"{near}'unsampler families' lists all {len(names)}"
            skipped = f" (skipped: {'; '.join(self.problems)})" if self.problems else ""
            raise BadParameterError(f"unknown model family {name!r}; {known}{skipped}")
        return fam

    def with_families(self, extra: Iterable[Family], problems: Iterable[str] = ()) -> "Registry":
        """A new registry: these families added after the present ones (the present one is unchanged)."""
        return Registry(self._families + tuple(extra), self._class_defaults, self.problems + tuple(problems))


_builtin: Optional[Registry] = None
_current: Optional[Registry] = None


def builtin_registry() -> Registry:
    """The built-in families (``data/families.json``), built once."""
    global _builtin
    if _builtin is None:
        fams, class_defaults = load_builtin()
        _builtin = Registry(fams, class_defaults)
    return _builtin


def registry() -> Registry:
    """The registry in use: the built-in one unless ``use_registry`` installed another."""
    return _current if _current is not None else builtin_registry()


def use_registry(reg: Optional[Registry]) -> Registry:
    """Install a registry (None: back to the built-in one); returns the previous one."""
    global _current
    previous = registry()
    if reg is not None and not isinstance(reg, Registry):
        raise TypeError("use_registry takes a Registry")
    _current = reg
    return previous


def family_names() -> list:
    """All family names, in the registry's order (the built-in ones as ComfyUI's detected families, then users')."""
    return registry().names()


def all_families() -> list:
    return list(registry())


def get_family(name) -> Family:
    """Look a family up by name, ComfyUI class name or display name, case-insensitively (see the module doc)."""
    return registry().get(name)


def families_for_channels(channels: int, ndim: Optional[int] = None) -> list:
    """Families whose latent format has this many channels (and, if given, this tensor rank)."""
    return [f for f in all_families()
            if f.latent.channels == channels and (ndim is None or f.latent.ndim == ndim)]
