"""POST /webhook/drift-detected: alerts start retraining (drift, accuracy SLO, Alertmanager).

Authenticated with a shared token (`Authorization: Bearer <token>`, monitoring.webhook_token),
the same as POST /feedback: a wrong or missing token, or a server without one configured, is a
401. Accepts Alertmanager's webhook payload (version 4) or a plain {"reason": ...}; resolved
alerts start nothing.
"""

# No `from __future__ import annotations`: FastAPI must see the models below at runtime.
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ..config import Settings
from ..pipelines.retraining import request_retraining
from .metrics import ServingMetrics


class Alert(BaseModel):
    status: str = "firing"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class AlertPayload(BaseModel):
    """Alertmanager's webhook body (fields we use), or just a reason."""

    status: str = "firing"
    alerts: list[Alert] = []
    reason: str | None = None


class RetrainAnswer(BaseModel):
    started: bool
    message: str


def token_required(settings: Settings) -> Any:
    """The dependency that guards /webhook/* and /feedback: the shared bearer token, or a 401."""
    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        expected = settings.monitoring.webhook_token
        given = credentials.credentials if credentials else ""
        if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
            detail = "invalid or missing token" if expected else "no webhook token configured"
            raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})

    return Depends(authorised)


def router(settings: Settings, metrics: ServingMetrics) -> APIRouter:
    api = APIRouter(tags=["monitoring"], dependencies=[token_required(settings)])

    @api.post("/webhook/drift-detected", response_model=RetrainAnswer)
    def drift_detected(payload: AlertPayload, request: Request) -> dict[str, Any]:
        firing = [a for a in payload.alerts if a.status == "firing"]
        if (payload.alerts and not firing) or payload.status == "resolved":
            metrics.retraining.labels("ignored").inc()
            return {"started": False, "message": "alert resolved: nothing to do"}
        names = sorted({a.labels.get("alertname", "alert") for a in firing})
        reason = payload.reason or f"{', '.join(names) or 'drift'} via {request.url.path}"
        outcome = request_retraining(settings, reason)
        metrics.retraining.labels("started" if outcome.started else "deduplicated").inc()
        return {"started": outcome.started, "message": outcome.message}

    return api
