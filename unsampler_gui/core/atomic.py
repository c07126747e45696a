"""Every file Unsampler writes, and every file it opens to read, goes through here.

Writing (``AtomicFile``, ``atomic_write``): the data goes to a temporary file in the target's own
folder, ``.unsampler-<pid>-<random>.partial``, created with mode 0666 less the umask (what a plain
``open()`` gives). When it is complete it is fsynced and renamed onto the target:
- without ``overwrite`` the rename refuses to replace anything, atomically (``renameat2`` with
  ``RENAME_NOREPLACE`` on Linux, else a hard link and an unlink), so of two writers of one new file
  the second is told the file exists instead of silently replacing the first;
- with ``overwrite`` only a regular file or a symlink is replaced; a folder, FIFO, socket or device
  node never is.
A failed or cancelled write removes its temporary file; a killed one leaves it, and the next write
into that folder removes partial files of ours whose process is gone and that nobody touched for
``STALE_SECONDS``. Every OS error becomes the same clear ``ResourceError`` (disk full, permission
denied, already exists). Streamed files are handed to the disk as they are written (write-behind),
so that the final fsync has little left to do.

Reading (``open_regular``): a path is opened without blocking, and anything but a regular file (a
FIFO would block ``open()`` forever, a device could be endless) is refused with a message.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import stat
import sys
import time
from typing import Callable, Optional

from .errors import BadFileError, ResourceError

PARTIAL_PREFIX = ".unsampler-"
PARTIAL_SUFFIX = ".partial"
#: A partial file of ours is stale when its process is gone and nothing wrote to it for this long.
STALE_SECONDS = 10 * 60
#: ... or, whatever its process, when nothing wrote to it for this long (pid reuse; other machines).
ABANDONED_SECONDS = 24 * 3600
_PARTIAL_NAME = re.compile(r"^\.unsampler-(?:(\d+)-)?[A-Za-z0-9_]{6,16}\.partial$")

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str:
    """'a FIFO (named pipe)', 'a folder', ... for a stat mode that is not a regular file."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


# ----------------------------------------------------------------------------- reading


def open_regular(path, label: str = "") -> "os.PathLike":
    """Open ``path`` for binary reading if it is a regular file; never blocks on a FIFO or a device.

    Raises ``BadFileError``: "no such file", "is a folder", "is a FIFO (named pipe), not a regular
    file", "permission denied". ``label`` replaces the path in messages.
    """
    p = os.fspath(path)
    name = label or p
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):  # checked before open(): opening a FIFO would block
            raise BadFileError(_not_regular(name, st.st_mode))
        fd = os.open(p, flags)
    except BadFileError:
        raise
    except FileNotFoundError:
        raise BadFileError(f"{name}: no such file") from None
    except PermissionError:
        raise BadFileError(f"{name}: permission denied (cannot read the file)") from None
    except IsADirectoryError:
        raise BadFileError(f"{name}: is a folder, not a file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise BadFileError(f"{name}: cannot open ({getattr(e, 'strerror', None) or e})") from None
    try:
        st = os.fstat(fd)  # the file opened may not be the one stat() saw
        if not stat.S_ISREG(st.st_mode):
            raise BadFileError(_not_regular(name, st.st_mode))
        if flags & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(name: str, mode: int) -> str:
    kind = file_kind(mode)
    if kind == "a folder":
        return f"{name}: is a folder, not a file"
    return f"{name}: is {kind}, not a regular file"


# ----------------------------------------------------------------------------- messages


def disk_error(path, e: OSError) -> ResourceError:
    """The one message for each way a write can fail."""
    name = os.path.basename(os.fspath(path))
    code = getattr(e, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ResourceError(f"disk full while writing {name}: nothing was saved; "
                             "free some space or export fewer frames")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ResourceError(f"cannot write {path}: permission denied")
    if code == errno.EEXIST:
        return exists_error(path)
    if code == errno.ENAMETOOLONG:
        return ResourceError(f"cannot write {name}: the file name is too long")
    return ResourceError(f"cannot write {name}: {getattr(e, 'strerror', None) or e}")


def exists_error(path) -> ResourceError:
    return ResourceError(f"{path} already exists (choose another name, or allow overwriting)")


def check_replaceable(path, overwrite: bool) -> None:
    """Refuse a target that is a folder, that exists without ``overwrite``, or that is a special file.

    With ``overwrite``, a regular file or a symlink may be replaced (the link itself, never what it
    points to); a FIFO, socket or device node never is.
    """
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    except OSError as e:
        raise disk_error(p, e) from None
    if stat.S_ISDIR(st.st_mode):
        raise ResourceError(f"{p} is a folder")
    if not overwrite:
        raise exists_error(p)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise ResourceError(f"{p} is {file_kind(st.st_mode)}, not a regular file: refusing to replace it")


def check_target(path, overwrite: bool) -> str:
    """The absolute target path, after the checks that can be made before any work is done."""
    p = os.path.abspath(os.fspath(path))
    if os.path.isdir(p) and not os.path.islink(p):
        raise ResourceError(f"{p} is a folder")
    check_replaceable(p, overwrite)
    folder = os.path.dirname(p)
    if not os.path.isdir(folder):
        raise ResourceError(f"cannot write {p}: the folder {folder} does not exist")
    return p


# ----------------------------------------------------------------------------- stale partial files


def _pid_alive(pid: int) -> Optional[bool]:
    """True/False where the OS can tell without side effects; None where it cannot (Windows)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32" or pid <= 0:  # os.kill on Windows terminates the process
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def clean_stale_partials(folder, now: Optional[float] = None) -> list:
    """Remove our own partial files in ``folder`` left by writers that died; returns their names.

    Only regular files named ``.unsampler-[<pid>-]<random>.partial`` and owned by this user are
    considered; one is removed when its process is gone and it is older than ``STALE_SECONDS``, or
    when nothing has written to it for ``ABANDONED_SECONDS``.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        m = _PARTIAL_NAME.match(entry.name)
        if not m:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (uid is not None and st.st_uid != uid):
            continue
        age = now - st.st_mtime
        alive = _pid_alive(int(m.group(1))) if m.group(1) else None
        if (alive is False and age > STALE_SECONDS) or age > ABANDONED_SECONDS:
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    return removed


# ----------------------------------------------------------------------------- the rename


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _renameat2_noreplace(src: str, dst: str) -> bool:
    """Rename without replacing (Linux ``renameat2``). False where the system or filesystem lacks it."""
    fn = getattr(_LIBC, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), dst)


def _place_no_replace(tmp: str, path: str) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically where the filesystem allows."""
    if _renameat2_noreplace(tmp, path):
        return
    try:
        os.link(tmp, path)  # fails with EEXIST if the target appeared meanwhile
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EACCES):
            raise
        if os.path.lexists(path):  # a filesystem without hard links (FAT, some network shares): best effort
            raise FileExistsError(errno.EEXIST, "File exists", path) from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a filesystem that cannot sync a folder is left as is."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- write-behind


_SYNC_WAIT_BEFORE, _SYNC_WRITE, _SYNC_WAIT_AFTER = 1, 2, 4


class WriteBehind:
    """Hand each written range to the disk at once, and keep at most ``window`` bytes waiting for it.

    On Linux, ``sync_file_range`` starts the writeback of every ``step`` bytes as they are written and
    waits for ranges ``window`` behind (then drops them from the page cache); without it,
    ``posix_fadvise(DONTNEED)`` starts the writeback. Elsewhere this does nothing: the final fsync
    does the work. The writer thread releases the GIL while it waits.
    """

    def __init__(self, fd: int, step: int = 8 << 20, window: int = 64 << 20):
        self.fd, self.step, self.window = fd, step, window
        self.started = 0  # bytes whose writeback has been started
        self.synced = 0  # bytes known to be on the disk
        fn = getattr(_LIBC, "sync_file_range", None)
        if fn is not None:
            fn.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
        self._sfr = fn
        self._fadvise = getattr(os, "posix_fadvise", None) if sys.platform.startswith("linux") else None
        self.enabled = bool(self._sfr or self._fadvise)

    def written(self, end: int) -> None:
        """``end`` bytes of the file have been written."""
        if not self.enabled or end - self.started < self.step:
            return
        self._start(self.started, end)
        self.started = end
        if self._sfr is not None and self.started - self.synced > self.window:
            upto = self.started - self.window
            self._call(self._sfr, self.synced, upto - self.synced, _SYNC_WAIT_BEFORE | _SYNC_WRITE | _SYNC_WAIT_AFTER)
            self._drop(self.synced, upto)
            self.synced = upto

    def _start(self, a: int, b: int) -> None:
        if self._sfr is not None:
            self._call(self._sfr, a, b - a, _SYNC_WRITE)
        else:
            self._drop(a, b)  # Linux starts the writeback of dirty pages it is asked to drop

    def _drop(self, a: int, b: int) -> None:
        if self._fadvise is not None:
            try:
                self._fadvise(self.fd, a, b - a, os.POSIX_FADV_DONTNEED)
            except OSError:
                self._fadvise = None

    def _call(self, fn, offset: int, nbytes: int, flags: int) -> None:
        if fn(self.fd, offset, nbytes, flags) != 0:
            code = ctypes.get_errno()
            if code in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
                raise OSError(code, os.strerror(code))
            self._sfr = None  # unsupported here (EINVAL, ESPIPE, ...): leave it to the final fsync
            self.enabled = bool(self._fadvise)


# ----------------------------------------------------------------------------- the writer


class AtomicFile:
    """A file being written: ``write()`` (or ``file`` for libraries that want a file object), then
    ``commit()``; leaving a ``with`` block by an exception, or ``abort()``, removes it.

    ``write_behind`` streams the data to the disk as it comes (for large files written in order).
    """

    def __init__(self, path, overwrite: bool = False, write_behind: bool = False):
        self.path = check_target(path, overwrite)
        self.overwrite = overwrite
        self.folder = os.path.dirname(self.path)
        clean_stale_partials(self.folder)
        self._file = None
        self._done = False
        self._offset = 0
        self._behind = None
        self.tmp, self.fd = self._create()
        try:
            self._behind = WriteBehind(self.fd) if write_behind else None
        except BaseException:  # even a signal here leaves no temporary file
            self.abort()
            raise

    @property
    def file(self):
        """A buffered binary file object over the temporary file (for libraries such as Pillow)."""
        if self._file is None:
            self._file = os.fdopen(self.fd, "wb", closefd=False)
        return self._file

    def _create(self):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        for _ in range(100):
            tmp = os.path.join(self.folder, f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
            try:
                return tmp, os.open(tmp, flags, 0o666)  # 0666 less the umask, as a plain open() gives
            except FileExistsError:
                continue
            except OSError as e:
                raise disk_error(self.path, e) from None
        raise ResourceError(f"cannot write {self.path}: no free temporary file name in {self.folder}")

    def write(self, data) -> None:
        """Append bytes (any buffer: bytes, a numpy array, a memoryview)."""
        mv = memoryview(data).cast("B")
        try:
            if self._file is not None:
                self._file.flush()
            while mv:
                n = os.write(self.fd, mv)
                mv = mv[n:]
                self._offset += n
            if self._behind is not None:
                self._behind.written(self._offset)
        except OSError as e:
            self.abort()
            raise disk_error(self.path, e) from None

    def commit(self) -> str:
        """fsync, then rename onto the target (refusing to replace it unless ``overwrite``)."""
        if self._done:
            raise ResourceError(f"{self.path}: this write was already finished")
        try:
            if self._file is not None:
                self._file.close()  # flushes; the descriptor stays open (closefd=False)
            os.fsync(self.fd)
            self._close_fd()
            if self.overwrite:
                check_replaceable(self.path, True)  # it may have changed while we wrote
                os.replace(self.tmp, self.path)
            else:
                _place_no_replace(self.tmp, self.path)
        except FileExistsError:
            self.abort()
            raise exists_error(self.path) from None
        except OSError as e:
            self.abort()
            raise disk_error(self.path, e) from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        _fsync_folder(self.folder)
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file (safe to call more than once)."""
        self._done = True
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass
        self._close_fd()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass
        except OSError:
            pass

    def _close_fd(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not self._done:
            self.abort()
        return False


def atomic_write(path, write: Callable, overwrite: bool = False) -> str:
    """Write a whole file atomically: ``write(f)`` gets a binary file object. Returns the path."""
    with AtomicFile(path, overwrite=overwrite) as af:
        try:
            write(af.file)
        except OSError as e:
            raise disk_error(af.path, e) from None
        return af.commit()


def atomic_write_text(path, text: str, overwrite: bool = False) -> str:
    """Write ``text`` as UTF-8, atomically. Returns the path."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), overwrite)


__all__ = ["AtomicFile", "atomic_write", "atomic_write_text", "open_regular", "check_target", "check_replaceable", "disk_error",
           "exists_error", "clean_stale_partials", "WriteBehind", "file_kind", "STALE_SECONDS"]
