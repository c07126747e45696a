"""The error types the core raises for the user's mistakes and bad files, and the escaping of untrusted text.

Everything a user can cause is reported as one of these, with a message meant to be shown as is.
A message is always one line of printable text: file names and values taken from files may hold
newlines, terminal escape sequences or lone surrogates, and ``printable`` writes those as ``repr``
would (``\\n``, ``\\x1b``, ``\\ud800``), so that nothing from a file reaches a terminal or a log raw.
"""
from __future__ import annotations

import contextlib
import os
import unicodedata

#: Unicode categories shown escaped: controls, format characters (bidi overrides), surrogates,
#: private use, unassigned code points, and the line and paragraph separators.
_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def printable(text, limit: int = 0) -> str:
    """``text`` with every control, format or surrogate character escaped (``\\x1b``, ``\\u202e``).

    Ordinary letters (``σ``, ``é``) are kept; a backslash is kept as is. ``limit`` > 0 cuts the result
    to about that many characters, with ``...`` at the end.
    """
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # no character of the categories above
        out = s
    else:
        out = "".join(c if c == " " or unicodedata.category(c) not in _HIDDEN else _escape(c) for c in s)
    if limit and len(out) > limit:
        out = out[:limit] + "..."
    return out


def _escape(c: str) -> str:
    o = ord(c)
    if c in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[c]
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


class UnsamplerError(Exception):
    """Base class: a clear, one-line message for the user (always printable: see ``printable``)."""

    def __str__(self) -> str:
        return printable(super().__str__())


class BadFileError(UnsamplerError, ValueError):
    """A file could not be read as what it claims to be."""


class BadParameterError(UnsamplerError, ValueError):
    """A parameter is out of range or unknown."""


class ResourceError(UnsamplerError):
    """Not enough memory or disk, or a device that is not there."""


class Cancelled(UnsamplerError):
    """The job was cancelled by the user; partial output has been discarded."""


@contextlib.contextmanager
def reading(path, what: str = "the file"):
    """The boundary of a reader: a failure that is not already one of ours becomes one clear line.

    Readers raise ``BadFileError`` where they know what is wrong; anything else that escapes them
    (a malformed value deep in a parser, a library's own error) is mapped here, once, by kind: out of
    memory, nested too deeply, an OS error, or corrupt data. Python's own texts are never shown
    (they stay on the exception's ``__cause__``).
    """
    try:
        yield
    except UnsamplerError:
        raise
    except MemoryError as e:
        raise ResourceError(f"{_name(path)}: not enough memory to read {what}") from e
    except RecursionError as e:
        raise BadFileError(f"{_name(path)}: cannot read {what}: its data is nested too deeply") from e
    except OSError as e:
        raise BadFileError(f"{_name(path)}: cannot read {what} ({e.strerror or 'input/output error'})") from e
    except Exception as e:  # noqa: BLE001 - this is the one place where a reader's failures are worded
        raise BadFileError(f"{_name(path)}: cannot read {what}: corrupt or unsupported data") from e


def _name(path) -> str:
    try:
        return os.path.basename(os.path.normpath(os.fspath(path))) or str(path)
    except TypeError:
        return str(path)
