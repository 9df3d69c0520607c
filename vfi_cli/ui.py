"""Rich console helpers shared by the commands: one error style, one console per stream."""

from __future__ import annotations

import functools
import sys


@functools.cache
def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def stderr_bar(*columns):
    """A transient rich progress bar on stderr for a command's long step; drawn only on a terminal,
    because a live display stopped off one (a log, a pipe) leaves an empty line before any error."""
    from rich.progress import Progress

    err = console(stderr=True)
    return Progress(*columns, console=err, disable=not err.is_terminal, transient=True)


def print_error(message: str) -> None:
    """Print one line `error: ...` on stderr (no traceback: this is a user error)."""
    if sys.stderr.isatty():
        console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True)
    else:
        sys.stderr.write(f"error: {message}\n")


def print_warning(message: str) -> None:
    if sys.stderr.isatty():
        console(stderr=True).print(f"[yellow]warning:[/] {message}", markup=True)
    else:
        sys.stderr.write(f"warning: {message}\n")


def print_notice(message: str) -> None:
    sys.stderr.write(f"{message}\n")
