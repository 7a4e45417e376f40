"""Advisory locks on lock files (fcntl.flock), naming their holder.

The kernel drops a flock when its process dies, however it dies (SIGKILL included), so a lock
never outlives a killed run: the next run takes it at once. The file holds the holder's pid,
so whoever waits or gives up can say whom for.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


class Busy(Exception):
    """The lock is held by another process (`holder`: its pid as it wrote it)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def hold(path: Path, wait: bool, what: str = "", remove: bool = False) -> Iterator[None]:
    """Hold the lock at `path` for the body. Held elsewhere: raise `Busy` (wait=False), or
    say so once on stderr (`what`: what is waited for) and wait. `remove`: unlink the file
    before releasing it, leaving nothing behind (whoever then holds the unlinked file sees
    that the path no longer leads to it, and starts over on the path's new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            if not wait:
                os.close(fd)
                raise Busy(holder) from None
            if not waited:
                logger.info("waiting for pid %s, %s", holder, what)
                waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # removed (or replaced) by its previous holder: lock the path's new file
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            if remove:
                with contextlib.suppress(OSError):
                    path.unlink()
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """Whether some live process holds the lock at `path` (False when there is no file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
