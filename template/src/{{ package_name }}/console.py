"""Terminal output: one console, and a spinner with elapsed time for each long step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True, highlight=False)


@contextmanager
def step(message: str) -> Iterator[None]:
    """Show `message` with a spinner while the block runs, then how long it took."""
    start = time.perf_counter()
    with console.status(f"{message}..."):
        yield
    console.print(f"[green]✓[/] {message} [dim]({time.perf_counter() - start:.1f}s)[/]")
