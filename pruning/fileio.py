"""Small helpers: atomic writes, file hashes, and a description of this machine."""

from contextlib import contextmanager
import errno
import hashlib
import json
import os
import platform
import stat
import sys
from pathlib import Path
import tempfile

from .errors import PruningError


def check_regular(path, verb="write") -> Path:
    """``path`` is absent or a regular file: not a directory, FIFO, device or a link to one (which
    would be replaced, or block, or be written through)."""
    if not isinstance(path, (str, os.PathLike)):
        raise PruningError(f"cannot {verb} {path!r:.60}: not a file path")
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a device is a device
    except FileNotFoundError:
        return Path(path)
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a file used as a directory
        raise PruningError(f"cannot {verb} {str(path)[:200]}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(mode):
        why = os.strerror(errno.EISDIR) if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise PruningError(f"cannot {verb} {str(path)[:200]}: {why}")
    return Path(path)


def atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    An error (or Ctrl-C) part way leaves no file at ``path``; an existing path that is not a
    regular file is refused (see ``check_regular``).
    """
    path = check_regular(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise PruningError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PruningError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # e.g. the path is a directory, or the disk is full
            raise PruningError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_description() -> str:
    """"<CPU model>, <n> cores (CPU only)": recorded with every training run and benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (CPU only)"


@contextmanager
def silenced_stderr():
    """Point file descriptor 2 at /dev/null, then restore it: C++ libraries (TensorFlow's start-up
    chatter) write there directly, and the command line's errors must stay one line."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def write_json(path, value, **dumps) -> None:
    """``value`` as JSON (indented, one trailing newline), written atomically (``atomic_write``)."""
    text = json.dumps(value, indent=dumps.pop("indent", 2), **dumps) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))

