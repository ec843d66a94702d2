# SPDX-License-Identifier: MIT
"""Small helpers the training stack shares: atomic file writes, JSON for
non-finite floats, durations as text."""
import contextlib
import math
import os

__all__ = ["atomic_write", "json_value", "format_duration"]


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Open a temporary file beside `path` for writing; on a clean exit it
    is flushed, fsynced and renamed over `path` (readers see the old file or
    the whole new one, never a part); on an exception it is removed. Parent
    directories are created."""
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    try:
        with open(tmp, mode, encoding=encoding, newline="" if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def json_value(v):
    """`v`, or its string ("nan", "inf", "-inf") for a non-finite float (JSON
    has no such numbers)."""
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


def format_duration(seconds):
    """``M:SS`` below an hour, ``H:MM:SS`` above."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"
