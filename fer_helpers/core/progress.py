"""Progress of long work: one line per finished step where output is kept, a live line on the terminal.

A report run executes each notebook in a kernel whose output goes into the saved notebook, not to the terminal
that started it. So the runner names a file in PROGRESS_ENV before the kernel starts (the kernel inherits the
variable); long work appends its progress to that file (`report`), and the runner shows the new lines on its
terminal while the notebook runs (`follow`). Where the variable is unset (JupyterLab, a script) nothing is written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from fer_helpers.core.markdown import format_duration
from fer_helpers.core.paths import PROGRESS_ENV

QUIET_SECONDS = 2.0  # on a terminal, the time so far is shown once no progress line has come for this long
LIVE, DONE = "live", "done"  # a moment of a step (each replaces the last on a terminal), a finished step (kept)


def report(text: str, done: bool = False) -> None:
    """Append one progress line to the file named by PROGRESS_ENV, if any."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{DONE if done else LIVE}\t{' '.join(text.split())}\n")


class LineWriter:
    """Progress lines on a stream: on a terminal a live line is redrawn in place and a finished step stays; in a
    file or a pipe only finished steps are written, each on its own line."""

    def __init__(self, stream: TextIO, prefix: str = ""):
        self.stream, self.prefix = stream, prefix
        self.terminal = stream.isatty()
        self._width = 0  # of the live line on the terminal, to blank it out

    def write(self, kind: str, text: str) -> None:
        text = self.prefix + text
        if self.terminal:
            self.stream.write("\r" + text.ljust(self._width) + ("\n" if kind == DONE else ""))
            self._width = 0 if kind == DONE else len(text)
        elif kind == DONE:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Leave the terminal on a fresh line where a live line was drawn last."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


@contextmanager
def follow(path: str | Path, stream: TextIO, prefix: str = "", interval: float = 0.5) -> Iterator[None]:
    """While the block runs, show the lines appended to path on stream (`LineWriter`), and on a terminal the time
    so far whenever no line has come for QUIET_SECONDS; path is emptied first and named in PROGRESS_ENV for the
    processes started inside the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    writer, stop, before = LineWriter(stream, prefix), threading.Event(), os.environ.get(PROGRESS_ENV)
    start = time.perf_counter()
    state = {"pending": "", "last": start}  # a line whose end has not been written yet; when the last one came

    def show(source: TextIO) -> None:
        *lines, state["pending"] = (state["pending"] + source.read()).split("\n")
        for line in lines:
            kind, _, text = line.partition("\t")
            if text:
                writer.write(kind, text)
                state["last"] = time.perf_counter()
        if writer.terminal and time.perf_counter() - state["last"] > QUIET_SECONDS:
            writer.write(LIVE, f"running for {format_duration(time.perf_counter() - start)}")

    def watch() -> None:
        with open(path, encoding="utf-8") as source:
            while not stop.wait(interval):
                show(source)
            show(source)

    thread = threading.Thread(target=watch, name="progress", daemon=True)
    os.environ[PROGRESS_ENV] = str(path)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        writer.close()
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before
