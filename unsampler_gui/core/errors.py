"""The error types the core raises for the user's mistakes and bad files.

Everything a user can cause is reported as one of these, with a message meant to be shown as is.
"""


class UnsamplerError(Exception):
    """Base class: a clear, one-line message for the user."""


class BadFileError(UnsamplerError, ValueError):
    """A file could not be read as what it claims to be."""


class BadParameterError(UnsamplerError, ValueError):
    """A parameter is out of range or unknown."""


class ResourceError(UnsamplerError):
    """Not enough memory or disk, or a device that is not there."""


class Cancelled(UnsamplerError):
    """The job was cancelled by the user; partial output has been discarded."""
