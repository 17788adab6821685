"""A server that starts while the tracking server is down and becomes ready once it is back.

An orchestrator restarts crashed pods, so a server that exits when the registry does not answer
turns an outage of the tracking server into a crash loop of every model server. This one
answers as `waiting` (/health 200, /ready and the model's routes 503 saying why), retries the
champion in the background, and from the first success answers as the app built around it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio import to_thread
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from ..console import console

# Seconds between two tries: a few cheap registry calls, quick to notice the server is back.
RETRY_SECONDS = 5.0


class Recovering:
    """ASGI app: `waiting` until `load` returns a model, then the app `build(model)` returns.

    Their lifespans (batchers, the shadow's client) run inside this one's.
    """

    def __init__(
        self,
        waiting: FastAPI,
        load: Callable[[], Any | None],
        build: Callable[[Any], FastAPI],
    ) -> None:
        self.app, self._load, self._build = waiting, load, build

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol: retry while the server runs, stop the loaded app after."""
        async with AsyncExitStack() as stack, anyio.create_task_group() as tasks:
            await receive()  # lifespan.startup
            waiting = self.app
            await stack.enter_async_context(waiting.router.lifespan_context(waiting))
            tasks.start_soon(self._retry, stack)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            tasks.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _retry(self, stack: AsyncExitStack) -> None:
        while True:
            await anyio.sleep(RETRY_SECONDS)
            model = await to_thread.run_sync(self._load)
            if model is not None:
                break
        app = self._build(model)
        # The loaded app's own startup (its batchers), undone at the server's shutdown.
        await stack.enter_async_context(app.router.lifespan_context(app))
        self.app = app
        console.print(f"[green]Ready:[/] {model.name} v{model.version} loaded.")
