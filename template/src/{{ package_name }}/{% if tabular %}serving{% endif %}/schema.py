"""Request and response models built from the model's own feature spec.

Fields keep the data's column names as JSON keys (spaces included) through aliases, so the
OpenAPI schema, its example and every 422 message speak the user's column names. A feature
accepts null only where the training data had missing values (the spec's `missing`): the model
learnt what to do with them there, and nowhere else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..data.schema import Feature, FeatureSpec
from ..params import ServingSettings

MAX_CATEGORY_LENGTH = ServingSettings.model_fields["max_category_length"].default


class PredictResponse(BaseModel):
    prediction: str
    probabilities: dict[str, float]
    model_version: str
    request_id: str


class BatchResponse(BaseModel):
    predictions: list[PredictResponse]


def request_models(
    spec: FeatureSpec, max_records: int, max_category_length: int = MAX_CATEGORY_LENGTH
) -> tuple[type[BaseModel], type[BaseModel]]:
    """(Record, Batch) pydantic models for one record and for a list of records."""
    fields: dict[str, Any] = {}
    for index, feature in enumerate(spec.features):
        fields[_identifier(feature.name, index)] = _field(feature, max_category_length)
    record = create_model(
        "Record",
        __config__=ConfigDict(
            extra="forbid",
            populate_by_name=False,
            json_schema_extra={"examples": [spec.example]},
        ),
        **fields,
    )
    batch = create_model(
        "Batch",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"records": [spec.example]}]}
        ),
        records=(list[record], Field(min_length=1, max_length=max_records)),
    )
    return record, batch


def _field(feature: Feature, max_category_length: int) -> tuple[Any, Any]:
    notes = []
    if feature.kind == "numeric":
        kind: Any = Annotated[float, Field(allow_inf_nan=False)]
    else:
        # A bound far above any real category: a 1 MB "category" is an attack, not data.
        kind = Annotated[str, Field(max_length=max_category_length)]
        notes.append(f"One of {feature.categories[:20]}; unseen values are treated as missing.")
    if feature.missing:
        kind = kind | None
        notes.append("null when unknown: the training data had missing values here.")
    description = " ".join(notes) or None
    return kind, Field(alias=feature.name, description=description, examples=[feature.example])


def _identifier(name: str, index: int) -> str:
    """A valid, unique attribute name for any column name; the alias keeps the original."""
    clean = re.sub(r"\W", "_", name).strip("_") or "feature"
    return f"f{index}_{clean}"
