"""POST /feedback: ground truth for served predictions, the input of accuracy monitoring.

Behind the webhook's bearer token (monitoring.webhook_token): the labels decide the accuracy
alert and the retraining trigger, so anyone who can post them can steer both. A body holds at
most serving.max_records_per_request labels, each for a request_id as /predict issues them
(32 hexadecimal digits). A label that cannot be written is a 503, never a silent 202: unlike a
request log line, the label is the whole point of the call, and the client can send it again.
"""

# No `from __future__ import annotations`: FastAPI must see the models built in `router`.
from typing import Literal

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, create_model

from .. import jsonl
from ..config import Settings
from ..data.schema import FeatureSpec
from ..tracking import redact
from .body import REFUSALS, json_body, openapi_body, parsed
from .metrics import ServingMetrics
from .webhooks import token_required

REQUEST_ID = r"^[0-9a-f]{32}$"  # uuid4().hex, what /predict answers with


class FeedbackAccepted(BaseModel):
    accepted: int


def body_model(spec: FeatureSpec, max_labels: int) -> type[BaseModel]:
    """The body: labels that must be one of the model's classes (a 422 names the choices)."""
    label_type = Literal[tuple(spec.classes)]  # type: ignore[valid-type]
    Label = create_model(
        "Label",
        __config__=ConfigDict(extra="forbid"),
        request_id=(
            str,
            Field(pattern=REQUEST_ID, description="request_id of a /predict answer"),
        ),
        label=(label_type, Field(description="The true class")),
    )
    return create_model(
        "Feedback",
        __config__=ConfigDict(extra="forbid"),
        labels=(list[Label], Field(min_length=1, max_length=max_labels)),
    )


def router(
    Feedback: type[BaseModel],
    settings: Settings,
    metrics: ServingMetrics,
) -> APIRouter:
    """The route, for a body model made by `body_model` (the app documents it in OpenAPI)."""
    log = jsonl.JsonlLog(settings.feedback_log)
    api = APIRouter(tags=["monitoring"], dependencies=[token_required(settings)])

    # The body is read after the token is checked: a stranger's 2 MB is never parsed.
    @api.post(
        "/feedback",
        status_code=202,
        response_model=FeedbackAccepted,
        openapi_extra=openapi_body(Feedback),
        responses=REFUSALS,
    )
    async def receive(request: Request) -> FeedbackAccepted:
        feedback = await parsed(Feedback, await json_body(request))
        now = jsonl.now()
        rows = [
            {"time": now, "request_id": item.request_id, "label": item.label}
            for item in feedback.labels  # type: ignore[attr-defined]
        ]
        try:
            await to_thread.run_sync(log.append, rows)
        except OSError as exc:
            metrics.errors.labels("/feedback", "503").inc()
            raise HTTPException(
                503, f"feedback log {settings.feedback_log} not writable: {redact(exc)}"
            ) from None
        metrics.feedback.inc(len(rows))
        return FeedbackAccepted(accepted=len(rows))

    return api
