"""One run at a time per run folder: an exclusive, advisory lock held by the driving process.

The lock is ``flock`` on ``OUT/.run.lock``: the operating system releases it when the holder
exits for any reason (Ctrl-C, ``kill -9``, a crash), so a stopped run never leaves a stale lock
behind and the same command resumes at once. The file also says who holds it, for the message
a second run gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from robustbench_win.errors import UserError

LOCK_NAME = ".run.lock"


class RunFolderBusyError(UserError, RuntimeError):
    """Another run is writing into the same run folder."""


@contextmanager
def hold_run_folder(out_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock inside the block; refuse at once if another run holds it.

    Raises:
        RunFolderBusyError: Another process holds the lock; the message says which.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusyError(
                f"'{out_dir}' is in use by another run ({_holder(path)}); wait for it to finish, "
                f"or choose another --out folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_holding(out_dir: Path) -> str | None:
    """Who holds the lock of ``out_dir`` (a run writing into it, in words), or ``None`` when no run does.

    Creates nothing: a folder without a lock file has no run in it.
    """
    path = Path(out_dir) / LOCK_NAME
    try:
        handle = open(path)  # read-only: a committed report folder stays as it is
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return "holder unknown"
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, since {info.get('since', '?')}"
