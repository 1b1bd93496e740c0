"""One writer per output directory: ``OUT/.falab.lock`` holds the writer's process id while it writes.

A second writer gets one ``Invalid`` line naming the holder. A lock left by a process that no longer exists (killed
with ``kill -9``) is stale and taken over, so a crash never blocks the directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ._checks import invalid

LOCK_NAME = ".falab.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> int | None:
    try:
        text = lock.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def output_lock(out: Path, name: str = "out") -> Iterator[Path]:
    """Hold ``out/.falab.lock`` (``out`` must exist) for the duration of the block; refuses when a live process
    holds it, takes over a stale one, and removes it on exit if it is still ours."""
    lock = out / LOCK_NAME
    mine = str(os.getpid())
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _holder(lock)
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise invalid(name, str(out), f"a directory no other falab process is writing (process {pid} "
                              f"holds {LOCK_NAME}; wait for it or choose another --{name})") from None
            lock.unlink(missing_ok=True)  # stale: its writer is gone
            continue
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(mine)
        break
    else:
        raise invalid(name, str(out), f"a directory whose {LOCK_NAME} can be taken (another writer raced for it)")
    try:
        yield lock
    finally:
        if _holder(lock) == os.getpid():
            lock.unlink(missing_ok=True)
