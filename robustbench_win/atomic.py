"""The one atomic file writer: every file the suite writes goes through it.

A file is written to a temporary name in its own folder, flushed to disk and renamed over the
destination, so a reader (or a resumed run) sees either the old file or the new one, never
half of one. A write that fails (disk full, read-only folder, a file where a folder should be)
raises :class:`WriteError`, which names the file; callers that keep going after other errors
let this one through, because every later write would fail the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from robustbench_win.errors import UserError


TEMPORARY_SUFFIX = ".tmp"  # of the hidden file a write goes to before it is renamed into place


class WriteError(UserError, OSError):
    """A file could not be written; ``path`` names it and ``strerror`` says why."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(error.errno, error.strerror or str(error), str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.strerror}"


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (0644 for umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path | str, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: Destination; its folder is created if needed.
        data: Text (written as UTF-8 with "\\n" line ends) or bytes.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        WriteError: The folder or the file could not be written; nothing is left behind.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise WriteError(path, error) from error
    except BaseException:
        _remove(tmp)
        raise
    return path


def remove_temporaries(folder: Path | str) -> list[Path]:
    """Delete what writes into ``folder`` (and below) left when their process was killed mid-write.

    A process killed by a signal it cannot handle (``kill -9``) leaves its temporary file
    (``.NAME.XXXXXXXX.tmp``) beside the destination, which it never replaced. Call this only while
    no other process writes into ``folder`` (a run holds its folder's lock).

    Returns:
        The files removed.
    """
    found = [p for p in Path(folder).rglob(f".*{TEMPORARY_SUFFIX}") if p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)
