"""The framework's ceiling: a bare FastAPI app whose POST /predict returns a constant."""

from typing import Any

from fastapi import FastAPI

app = FastAPI()
ANSWER = {"prediction": "0", "probabilities": {"0": 0.99, "1": 0.01}, "model_version": "1"}


@app.get("/ready")
def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(record: dict[str, Any]) -> dict[str, Any]:
    return ANSWER
