"""A checkpoint's tensor names and shapes, whatever the container, for model detection.

``KeyIndex`` is what the detection rules look at: every tensor's name, shape and dtype, the file's
metadata, and a way to read the values of one small tensor (the few rules that need values, such
as SD2's v-prediction test, read only that tensor's bytes). ``KeyView`` is the same index seen
under a key prefix such as ``model.diffusion_model.``, with the block-counting helpers the rules use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import BadFileError
from ..safetensors_io import SafetensorsHeader, read_tensor_array

#: The most bytes a rule may read to look at a tensor's values.
MAX_VALUE_BYTES = 1 << 20


@dataclass(frozen=True, eq=False)
class KeyIndex:
    """Tensor names -> shapes (and dtypes) of one checkpoint, plus a reader for small tensors."""

    shapes: dict  # name -> tuple of ints, in file order
    dtypes: dict  # name -> dtype name ("F16", "BF16", ...)
    container: str  # "safetensors", "torch zip pickle", ...
    metadata: dict = field(default_factory=dict)
    reader: Optional[Callable[[str], np.ndarray]] = None  # name -> array in the stored dtype

    def values(self, name: str) -> Optional[np.ndarray]:
        """The values of one tensor as float64, or None when they cannot be read here."""
        if self.reader is None or name not in self.shapes:
            return None
        arr = self.reader(name)
        if arr is None:
            return None
        return as_float64(arr, self.dtypes.get(name, ""))


def as_float64(arr: np.ndarray, dtype: str) -> np.ndarray:
    """Convert a tensor read in its storage dtype to float64 (BF16 is stored as uint16 bits)."""
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return arr.astype(np.float64)


def index_from_safetensors(header: SafetensorsHeader) -> KeyIndex:
    """Index a parsed safetensors header; values are read from the file one tensor at a time."""
    shapes = {n: t.shape for n, t in header.tensors.items()}
    dtypes = {n: t.dtype for n, t in header.tensors.items()}

    def reader(name: str):
        try:
            return read_tensor_array(header, name, max_bytes=MAX_VALUE_BYTES)
        except BadFileError:
            return None

    return KeyIndex(shapes, dtypes, "safetensors", dict(header.metadata), reader)


class KeyView:
    """The keys of a ``KeyIndex`` under one prefix, with the prefix stripped."""

    def __init__(self, index: KeyIndex, prefix: str):
        self.index = index
        self.prefix = prefix
        n = len(prefix)
        self.shapes = {k[n:]: s for k, s in index.shapes.items() if k.startswith(prefix)}
        self._stems = _dotted_stems(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def has(self, key: str) -> bool:
        return key in self.shapes

    def shape(self, key: str) -> Optional[tuple]:
        return self.shapes.get(key)

    def has_under(self, stem: str) -> bool:
        """True when some key starts with ``stem`` (a dotted path ending with '.', at most STEM_DEPTH deep)."""
        return stem in self._stems

    def count_blocks(self, pattern: str) -> int:
        """How many consecutive blocks 0, 1, 2, ... exist, e.g. ``count_blocks("double_blocks.{}.")``."""
        n = 0
        while pattern.format(n) in self._stems:
            n += 1
        return n

    def values(self, key: str) -> Optional[np.ndarray]:
        return self.index.values(self.prefix + key)


#: Stems are kept up to this many name components (the rules look at most 5 deep).
STEM_DEPTH = 6


def _dotted_stems(names) -> set:
    """The dotted prefixes of every name, each ending with '.' ("a.b.c" -> "a.", "a.b."), up to STEM_DEPTH deep."""
    stems = set()
    for name in names:
        i = name.find(".")
        for _ in range(STEM_DEPTH):
            if i == -1:
                break
            stems.add(name[:i + 1])
            i = name.find(".", i + 1)
    return stems


def top_level_prefixes(names, limit: int = 6) -> list:
    """The most common first name components, as ``"first_stage_model.* (248)"`` strings."""
    counts: dict = {}
    for name in names:
        head = name.split(".", 1)[0]
        key = head + ".*" if "." in name else head
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [f"{k} ({v})" for k, v in ranked[:limit]]
