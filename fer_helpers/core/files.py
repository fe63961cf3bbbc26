"""Writing files atomically: a reader, or a crash, sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def relative_link(path: str | Path, start: str | Path) -> str:
    """A link to a file from a folder, as Markdown and JSON write it: relative, with forward slashes."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


@contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` in one step when the block ends, and is
    removed when the block fails. The name ends in ".tmp" and is this process's own; with keep_suffix, in ".tmp"
    and `path`'s suffix, for writers that choose the format by the name (a video's container)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if keep_suffix else ""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A new file to write `path`'s content into (mode "wb" or "w", text as UTF-8), in place of it when done."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a new file: mode 'wb' or 'w', not {mode!r}")
    with atomic_path(path) as temporary:
        # os.open rather than mkstemp: the umask, not 0600, sets who may read a shared file
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as out:
            yield out


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` atomically; returns the path."""
    with atomic_open(path, "wb") as out:
        out.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) to `path` atomically; returns the path."""
    with atomic_open(path, "w") as out:
        out.write(text)
    return Path(path)


def between_markers(text: str, start_marker: str, end_marker: str) -> tuple[int, int] | None:
    """Where the text between two markers starts and ends; None without both markers, in that order."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        return None
    return start + len(start_marker), end


def rewrite_between(path: str | Path, start_marker: str, end_marker: str, content: str) -> bool:
    """Replace the text between two markers of a text file with content, atomically; True if the file changed.

    A file without both markers, in that order, is an error that names them.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    bounds = between_markers(text, start_marker, end_marker)
    if bounds is None:
        raise ValueError(f"{path.name} has no '{start_marker}' ... '{end_marker}' block to update")
    new = f"{text[: bounds[0]]}\n{content}\n{text[bounds[1] :]}"
    if new == text:
        return False
    atomic_write_text(path, new)
    return True


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A new, empty folder beside `path` to fill; it takes `path`'s place when the block ends (the old folder is
    removed first: a folder cannot be replaced in one step while it has files), and is removed when the block fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    temporary.chmod(0o755)  # mkdtemp's 0700 would keep a shared folder private to one user
    try:
        yield temporary
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
