"""POST /feedback: ground truth for served predictions, the input of accuracy monitoring."""

# No `from __future__ import annotations`: FastAPI must see the models built in `router`.
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, create_model

from ..data.schema import FeatureSpec
from .metrics import ServingMetrics


class FeedbackAccepted(BaseModel):
    accepted: int


def router(spec: FeatureSpec, log: Path, metrics: ServingMetrics) -> APIRouter:
    """Labels must be one of the model's classes; anything else is a 422 naming the choices."""
    label_type = Literal[tuple(spec.classes)]  # type: ignore[valid-type]
    Label = create_model(
        "Label",
        request_id=(str, Field(min_length=1, description="request_id of a /predict answer")),
        label=(label_type, Field(description="The true class")),
    )
    Feedback = create_model("Feedback", labels=(list[Label], Field(min_length=1)))
    lock = threading.Lock()
    api = APIRouter(tags=["monitoring"])

    @api.post("/feedback", status_code=202, response_model=FeedbackAccepted)
    def receive(feedback: Feedback) -> FeedbackAccepted:  # type: ignore[valid-type]
        now = datetime.now().astimezone().isoformat(timespec="milliseconds")
        lines = "".join(
            json.dumps({"time": now, "request_id": item.request_id, "label": item.label}) + "\n"
            for item in feedback.labels
        )
        log.parent.mkdir(parents=True, exist_ok=True)
        with lock, log.open("a", encoding="utf-8") as handle:
            handle.write(lines)
        metrics.feedback.inc(len(feedback.labels))
        return FeedbackAccepted(accepted=len(feedback.labels))

    return api
