"""Owner-only files that hold secrets: read without trusting what sits at the path, write atomically.

Reading never follows a symbolic link, never blocks (a FIFO at the path), never reads more than a
cap (a 400 MB file, /dev/zero) and accepts only a regular file owned by this user. Writing goes
through a temp file in the same folder and os.replace, so a symlink at the path is replaced, never
written or chmod-ed through; folders are created owner-only (0700) whatever the umask.
Where the platform lacks a feature (O_NOFOLLOW, uids on Windows) the closest check is used.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat
import threading
import time
from collections.abc import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: exclusive() holds one process's threads only
    fcntl = None

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


# The pack's own folders: cloud_outpaint in ComfyUI's user directory, cloud-outpaint elsewhere (the
# credential store's and the cost state's). make_private_dirs makes an existing folder of these names
# owner-only again; any other existing folder (one the user named) is left as it is.
OWN_DIR_NAMES = ("cloud_outpaint", "cloud-outpaint")

_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


class UnsafeFile(Exception):
    """The path holds something that must not be read (or written through); the text says what."""


def read_private(path: pathlib.Path, max_bytes: int, *, follow_symlinks: bool = False,
                 check_owner: bool = True) -> bytes | None:
    """The file's bytes, or None when nothing is at the path. Raises UnsafeFile for a symbolic
    link (unless follow_symlinks), anything but a regular file, a file owned by another user
    (when check_owner) or one over max_bytes; OSError for other failures."""
    flags = os.O_RDONLY | _NONBLOCK | _CLOEXEC | (0 if follow_symlinks else _NOFOLLOW)
    if not follow_symlinks and not _NOFOLLOW and os.path.islink(path):
        raise UnsafeFile("is a symbolic link")
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):  # ELOOP from O_NOFOLLOW
            raise UnsafeFile("is a symbolic link") from None
        raise exc from None
    try:
        info = _own_regular_file(fd, check_owner)
        if info.st_size > max_bytes:
            raise UnsafeFile(f"is over {max_bytes // 1024} KB")
        chunks, size = [], 0
        while True:  # the size may change while reading: never take more than the cap
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeFile(f"is over {max_bytes // 1024} KB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _own_regular_file(fd: int, check_owner: bool = True) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile("is not a regular file")
    if check_owner and hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafeFile("is owned by another user")
    return info


def append_private(path: pathlib.Path, data: bytes) -> None:
    """Append `data` to the owner-only (0600) file at `path` (created if missing) and fsync it. What
    read_private refuses (a symbolic link, a FIFO, another user's file) is UnsafeFile, never written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o600)
    except OSError:  # ELOOP from O_NOFOLLOW; ENXIO for a FIFO nobody reads
        if os.path.islink(path):
            raise UnsafeFile("is a symbolic link") from None
        raise
    try:
        _own_regular_file(fd)
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _chmod_dir(directory: pathlib.Path) -> None:
    """chmod 0700 on the folder itself, never on what a symlink there points to."""
    if not _NOFOLLOW or not _DIRECTORY or not hasattr(os, "fchmod"):
        if os.path.islink(directory):
            raise UnsafeFile(f"the folder {directory} is a symbolic link")
        os.chmod(directory, 0o700)
        return
    try:
        fd = os.open(directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError:
        if os.path.islink(directory):
            raise UnsafeFile(f"the folder {directory} is a symbolic link") from None
        raise
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def make_private_dirs(directory: pathlib.Path, own_names: tuple[str, ...] = ()) -> None:
    """Create the missing folders of `directory` owner-only (0700, whatever the umask). An
    existing folder is left alone unless its name is in `own_names` (the pack's own folder),
    which is then made 0700 again; a symlink there is refused rather than followed."""
    missing = []
    current = directory
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:  # made by a concurrent save: treat as existing
            continue
        _chmod_dir(folder)  # mkdir's mode is filtered by the umask
    if directory not in missing and directory.name in own_names:
        _chmod_dir(directory)


def pid_alive(pid: int) -> bool | None:
    """Whether process `pid` exists; None where that cannot be asked (not POSIX: on Windows signal 0
    would be a Ctrl+C to the console)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return None
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _remove_stale_temps(path: pathlib.Path) -> None:
    """Temp files of writers that were killed mid-write (they hold secrets too): those of a
    process that is gone, or (where processes cannot be asked) older than an hour."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 2:].split(".", 1)[0])
            alive = pid_alive(pid)
            if alive or (alive is None and time.time() - os.lstat(tmp).st_mtime < 3600):
                continue
            os.unlink(tmp)
        except (ValueError, OSError):
            continue


def write_private(path: pathlib.Path, data: bytes) -> None:
    """Replace `path` atomically by an owner-only (0600) file holding `data`. A failure at any
    step leaves the previous file as it was (the temp file is removed)."""
    _remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask too
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)  # replaces a symlink at `path` itself, never its target
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextlib.contextmanager
def exclusive(path: pathlib.Path, wait: Callable[[float], None] = time.sleep,
              own_names: tuple[str, ...] = ()) -> Iterator[None]:
    """Holds the lock file `path` across this process's threads and other processes (flock; its
    folder made by make_private_dirs(own_names)). `wait(seconds)` sleeps between tries and may raise:
    a run's deadline or interrupt ends the wait."""
    with _path_locks_guard:
        local = _path_locks.setdefault(str(path), threading.Lock())
    while not local.acquire(timeout=0.05):
        wait(0.05)
    try:
        if fcntl is None:
            yield
            return
        make_private_dirs(path.parent, own_names)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    wait(0.1)
            yield
        finally:
            os.close(fd)  # releases the flock
    finally:
        local.release()
