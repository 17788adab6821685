"""Request bodies: capped before they are read, JSON only, parsed off the loop when large.

Policy, the same on every POST route that takes JSON (/predict, /predict/batch, /feedback):
- a body over serving.max_body_bytes is a 413 naming the limit, refused from its Content-Length
  header before any of it is read, or as soon as a chunked body crosses the limit;
- a Content-Type other than JSON (application/json, application/*+json) is a 415; a request
  without one is read as JSON, as FastAPI does for its own body parameters;
- what does not parse or validate is a 422 whose errors name the field, with the offending input
  cut to a short preview: an error never echoes a 2 MB body back, and NaN, Infinity or bytes that
  are not UTF-8 are shown as text instead of breaking the error's own JSON (which was a 500).
"""

from __future__ import annotations

import math
from typing import Any

from anyio import to_thread
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse, Response

from .body_limit import CLOSE, BodyLimit

# Above this size a body is parsed in a worker thread. A 2 MB batch takes tens of milliseconds to
# validate, long enough to hold up /health and every other request on the event loop; a single
# record takes microseconds, less than the hop to a thread costs.
OFFLOAD_BYTES = 64 * 1024
# A 422 lists this many errors at most (a batch of 10,000 bad records would list 10,000).
MAX_ERRORS = 20
PREVIEW_CHARS = 80
PREVIEW_ITEMS = 10
# Documented on every JSON route, so clients (and schemathesis) know the refusals.
REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"description": "Body over serving.max_body_bytes"},
    415: {"description": "Content-Type is not JSON"},
}


class JSONBodyLimit(BodyLimit):
    """serving.max_body_bytes, refused in FastAPI's shape."""

    def refusal(self) -> HTTPException:
        detail = f"request body over the {self.limit:,}-byte limit (serving.max_body_bytes)"
        return HTTPException(413, detail, headers=CLOSE)

    def respond(self) -> Response:
        refusal = self.refusal()
        return JSONResponse({"detail": refusal.detail}, 413, headers=refusal.headers)


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a JSON body read by hand; the app puts `model` in its components."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def json_body(request: Request) -> bytes:
    """The raw body of a JSON request (415 for another content type); the cap is BodyLimit's."""
    content_type = request.headers.get("content-type")
    if content_type and not content_type.startswith("application/json"):
        media = content_type.partition(";")[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise HTTPException(415, f"Content-Type '{media}' is not JSON: send application/json")
    return await request.body()


async def parsed(model: type[BaseModel], body: bytes) -> BaseModel:
    """`body` validated as `model`; in a worker thread when it is large."""
    if len(body) > OFFLOAD_BYTES:
        return await to_thread.run_sync(validated, model, body)
    return validated(model, body)


def validated(model: type[BaseModel], body: bytes) -> BaseModel:
    """Validate raw JSON; errors are FastAPI's 422, located in the body like its own."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


def safe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors fit to send back: previews for inputs, plain JSON, a bounded list."""
    shown = [_safe_error(error) for error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        shown.append({"type": "too_many_errors", "loc": ["body"], "msg": f"{more} more errors"})
    return shown


def _safe_error(error: dict[str, Any]) -> dict[str, Any]:
    safe = {"type": error["type"], "loc": [preview(part) for part in error["loc"]]}
    safe["msg"] = error["msg"]
    if "input" in error:
        safe["input"] = preview(error["input"])
    if "ctx" in error:
        safe["ctx"] = {key: preview(value) for key, value in error["ctx"].items()}
    return safe


def preview(value: Any, depth: int = 2) -> Any:
    """`value` as JSON can carry it, cut short: long strings, big containers, huge integers."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # str() of an integer over 4,300 digits raises, and nobody needs its digits back.
        return value if abs(value) < 10**18 else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: PREVIEW_CHARS * 4]).decode("utf-8", errors="replace")
    if isinstance(value, str):
        if len(value) <= PREVIEW_CHARS:
            return value
        return f"{value[:PREVIEW_CHARS]}... ({len(value):,} characters)"
    if isinstance(value, dict):
        if depth == 0:
            return f"<object of {len(value)} keys>"
        items = list(value.items())
        shown = {str(k)[:PREVIEW_CHARS]: preview(v, depth - 1) for k, v in items[:PREVIEW_ITEMS]}
        if len(items) > PREVIEW_ITEMS:
            shown["..."] = f"{len(items) - PREVIEW_ITEMS} more keys"
        return shown
    if isinstance(value, list | tuple):
        if depth == 0:
            return f"<array of {len(value)} items>"
        shown_list = [preview(item, depth - 1) for item in value[:PREVIEW_ITEMS]]
        if len(value) > PREVIEW_ITEMS:
            shown_list.append(f"... {len(value) - PREVIEW_ITEMS} more items")
        return shown_list
    return preview(str(value), depth)
