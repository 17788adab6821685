"""ASGI middleware that caps request bodies before they are read, on every server here.

With a Content-Length, the header alone decides (the server never delivers more bytes than it
announces), so an accepted request costs one header scan. A chunked body is counted as it
arrives and refused once it crosses the limit. Each server says how a refusal looks (FastAPI's
`detail` or OpenAI's `error` object) by overriding `refusal` and `respond`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The server drops the unread body instead of draining it.
CLOSE = {"Connection": "close"}


class BodyLimit(ABC):
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    @abstractmethod
    def refusal(self) -> Exception:
        """The 413 raised inside the app, which its exception handlers answer."""

    @abstractmethod
    def respond(self) -> Response:
        """The same 413, answered here before the app is reached."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    return await self.respond()(scope, receive, send)
                return await self.app(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self.refusal()
            return message

        await self.app(scope, counted, send)
