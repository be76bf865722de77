"""One run per output: an exclusive OS lock held for the whole run.

The lock is ``flock`` on a hidden file beside the output (``.OUT.xai-lock``), taken without
waiting: a second run on the same output is refused at once. The kernel releases the lock
when its process dies (SIGKILL included), so a stale file never blocks anyone.

The holder removes the file when it is done, to keep the folder tidy. Removing a lock file
is racy on its own (another run may have opened the old file just before it went away and
then lock a file nobody else can see), so after locking, a run checks that the file it
locked is still the one at the path, and starts again if not.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xaicli.errors import UsageError


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.xai-lock"


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the output's lock for the ``with`` block; UsageError if another run holds it."""
    path = lock_path(out)
    fd = _acquire(path, out)
    try:
        yield
    finally:
        # unlink while still holding the lock: a run that opened the old file sees it
        # is gone once it gets the lock, and retries on a fresh file
        path.unlink(missing_ok=True)
        os.close(fd)


def _acquire(path: Path, out: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UsageError(
                f"cannot write in the output folder {out.parent} ({exc.strerror}); "
                "choose another --out"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"another xai run is writing {out} (it holds {path}); "
                "wait for it to finish, or choose another --out"
            ) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            return fd
        os.close(fd)  # the previous holder removed the file we opened: try a fresh one
