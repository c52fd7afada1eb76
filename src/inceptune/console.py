"""Where inceptune talks to people: messages and progress bars on stderr.

Machine-readable output (JSON, CSV) goes to stdout; everything for people
goes through here, so `--quiet` silences it in one place.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False, soft_wrap=True)  # never break paths across lines
_quiet = False
_live: list[Progress] = []  # bars on screen; an interrupted Keras fit never closes its own


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def info(message: str) -> None:
    if not _quiet:
        console.print(message, markup=False)


def warn(message: str) -> None:
    if not _quiet:
        console.print(f"warning: {message}", style="yellow", markup=False)


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar with counts and ETA; yields `advance(n=1, note=None)`."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=_quiet,
        transient=False,
    )
    _live.append(bar)
    with bar:
        task = bar.add_task(description, total=total, note="")

        def advance(n: int = 1, note: str | None = None) -> None:
            if note is None:
                bar.advance(task, n)
            else:
                bar.update(task, advance=n, note=note)

        try:
            yield advance
        finally:
            if bar in _live:  # not taken down by stop_progress already
                _live.remove(bar)


def stop_progress() -> None:
    """Take every bar still on screen down (after an interruption), so what is printed next comes last."""
    while _live:
        _live.pop().stop()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up messages (oneDNN, CUDA probing) kept off the terminal."""
    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    tf.get_logger().setLevel("ERROR")
