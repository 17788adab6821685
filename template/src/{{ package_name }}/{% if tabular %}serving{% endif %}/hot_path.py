"""POST /predict's common case answered before FastAPI's per-request machinery.

Profiled under load, a one-record prediction spent most of its time in the framework rather
than the model: middleware layers, route matching over every route, dependency solving and a
Request object per call. This ASGI layer, outermost in the app, takes only the common case (a
JSON body of known, small length) and calls the very function the FastAPI route calls. Anything
else, and any body that does not validate, is handed to the app unchanged, the body replayed:
refusals (413, 415, 422) have one implementation and stay identical.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter

from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Answer = Callable[[bytes, float], Awaitable[bytes]]
JSON_HEADERS = [(b"content-type", b"application/json")]


class HotPredict:
    def __init__(self, app: ASGIApp, answer: Answer, max_bytes: int) -> None:
        self.app, self.answer, self.max_bytes = app, answer, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/predict"
            or scope["method"] != "POST"
            or not self._common(scope["headers"])
        ):
            return await self.app(scope, receive, send)
        start = perf_counter()
        body = await _read(receive)
        try:
            content = await self.answer(body, start)
        except RequestValidationError:  # the app answers it, with its own 422
            return await self.app(scope, _replay(body, receive), send)
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": content})

    def _common(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """JSON, with a Content-Length small enough to parse on the event loop."""
        length = json = False
        for name, value in headers:
            if name == b"content-length":
                length = value.isdigit() and int(value) <= self.max_bytes
            elif name == b"content-type":
                json = value.split(b";", 1)[0].strip().lower() == b"application/json"
        return length and json


async def _read(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that delivers `body` again, then whatever the server's delivers next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
