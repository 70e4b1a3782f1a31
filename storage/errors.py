"""Turn "the disk is full" into an error that says so and names what failed.

SQLite reports a full disk as SQLITE_FULL ("database or disk is full") and a
write the file system refused (a quota, a file-size limit, a failing disk) as
SQLITE_IOERR_WRITE ("disk I/O error"); Python reports ENOSPC and friends as
OSError. Either way the transaction is rolled back and nothing is lost, but
a person needs to read "no space left" and what could not be saved.
"""
from __future__ import annotations

import contextlib
import errno
import sqlite3
from typing import Iterator

NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_NAMES = ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC",
               "SQLITE_IOERR_TRUNCATE", "SQLITE_IOERR_SHMSIZE")


class StorageFull(sqlite3.OperationalError):
    """A write failed for lack of space; still an OperationalError, so code
    that already handles SQLite errors keeps working."""

    code = "disk-full"


def is_no_space(exc: BaseException) -> bool:
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") in _FULL_NAMES
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def no_space_message(what: str, exc: BaseException) -> str:
    return (f"{what} failed: no space left on the disk ({exc}); "
            f"free some space and try again, nothing stored earlier was lost")


@contextlib.contextmanager
def no_space_is_reported(what: str) -> Iterator[None]:
    """Re-raise a no-space failure inside the block as StorageFull(`what`)."""
    try:
        yield
    except StorageFull:
        raise
    except (sqlite3.Error, OSError) as exc:
        if is_no_space(exc):
            raise StorageFull(no_space_message(what, exc)) from exc
        raise
