"""Terminal output: one console, a spinner with elapsed time for each long step, and errors
as one red line instead of a traceback."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from .errors import ProjectError

console = Console(stderr=True, highlight=False)


@contextmanager
def step(message: str) -> Iterator[None]:
    """Show `message` with a spinner while the block runs, then how long it took."""
    start = time.perf_counter()
    with console.status(f"{message}..."):
        yield
    console.print(f"[green]✓[/] {message} [dim]({time.perf_counter() - start:.1f}s)[/]")


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """A CLI command that prints a ProjectError, or a tracking server that did not answer, as
    one red line and exits 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ProjectError as exc:
            problem = str(exc)
        except Exception as exc:
            from .tracking import unreachable

            problem = unreachable(exc)
            if problem is None:
                raise
        console.print(f"[red]Error:[/] {problem}")
        raise typer.Exit(2) from None

    return wrapper
