"""Request and response models of the REST service (the JSON shapes of ``docs/contracts.md``)."""

from __future__ import annotations

import math
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

MAX_ID_LENGTH = 256
MAX_EVENTS = 1000
MAX_BATCH_USERS = 100
MAX_HISTORY = 1000
MAX_K = 1000
# 0001-01-01 .. 9999-12-31 as epoch seconds: what datetime can represent
MIN_TS = -62_135_596_800
MAX_TS = 253_402_300_799


def _printable(value: str) -> str:
    """The id rule's character part: every character printable (``str.isprintable``).

    The message names the first offending character by code point and position; the caller (the 422 handler)
    adds the field name and the value received.
    """
    if value.isprintable():
        return value
    pos, char = next((n, c) for n, c in enumerate(value) if not c.isprintable())
    rule = "must not contain control characters" if unicodedata.category(char) == "Cc" else "must be printable"
    raise ValueError(f"{rule}; found U+{ord(char):04X} at position {pos}")


ID_DESCRIPTION = f"1-{MAX_ID_LENGTH} printable characters (no control characters, tabs or newlines)."

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_printable),
    Field(description=ID_DESCRIPTION),
]
"""A user, item or event id wherever it enters: request bodies here, the path's ``{user_id}`` in ``app.py``
(same length bounds, same validator)."""


def _timestamp(value: Any) -> float | None:
    """Epoch seconds (number) or ISO-8601 with a zone (``2024-05-01T12:00:00Z``) -> epoch seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds (a number) or an ISO-8601 string with a time zone; got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not MIN_TS <= value <= MAX_TS:
            raise ValueError(f"epoch seconds must be finite and within {MIN_TS}..{MAX_TS}")
        return float(value)
    if isinstance(value, str):
        if len(value) > 64:
            raise ValueError("an ISO-8601 timestamp is at most 64 characters")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO-8601 date-time with a time zone, e.g. '2024-05-01T12:00:00Z'") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError("an ISO-8601 timestamp must include a time zone ('Z' or '+02:00')")
        return parsed.timestamp()
    raise ValueError("must be epoch seconds (a number) or an ISO-8601 string with a time zone")


Timestamp = Annotated[
    float | None,
    BeforeValidator(_timestamp),
    Field(
        description="Epoch seconds or ISO-8601 with a time zone; omitted = the time the server receives it.",
        json_schema_extra={"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}, {"type": "null"}]},
    ),
]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    timestamp: Timestamp = None
    event_id: Id | None = Field(
        None, description="Client-chosen id; an event whose event_id is already stored is counted, not stored."
    )


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    stored: int = Field(description="Events newly stored (committed before this answer).")
    duplicates: int = Field(description="Events whose event_id was already stored (not stored again).")
    unknown_items: int = Field(description="Stored events whose item the served model does not know.")
    unknown_users: int = Field(description="Stored events whose user the served model does not know.")


class Because(BaseModel):
    """One reason: a history item (``item_id``) or, for models that read side information, an item attribute
    or a feature field (``name``, e.g. ``genre=Comedy``) with its ``kind``. History items keep the 0.1 shape
    ``{"item_id", "weight"}`` (no ``kind`` key)."""

    kind: Literal["history_item", "item_attribute", "feature_field"] = "history_item"
    item_id: str | None = Field(None, description="The history item (kind history_item).")
    name: str | None = Field(None, description="The attribute or field (the other kinds).")
    weight: float

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None and not (k == "kind" and v == "history_item")}


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    because: list[Because] = Field(default_factory=list)
    title: str | None = Field(None, description="Present when the run folder has item side information.")

    @model_serializer(mode="wrap")
    def _drop_missing_title(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # no return annotation on purpose: pydantic then keeps the model's own JSON schema
        data: dict[str, Any] = handler(self)
        if data.get("title") is None:
            data.pop("title", None)
        return data


class RecommendationResponse(BaseModel):
    user_id: str = Field(description="The requested user ('' for an anonymous session).")
    model_version: str
    items: list[RecommendedItem]
    fallback: Literal["popularity", "demographic"] | None = Field(
        description="Which fallback answered when the model could not personalise (no history, unknown user): "
        "'demographic' (the most popular items among users of the same demographic groups; the run was trained "
        "with --users and the user is described there, or user_features was given) or 'popularity' (global "
        "popularity); null when the model's own scores answered."
    )


class BatchRequest(BaseModel):
    """Either ``users`` (a batch of user ids, each with its live history) or ``history`` (an anonymous session)."""

    model_config = ConfigDict(extra="forbid")

    users: list[Id] | None = Field(None, min_length=1, max_length=MAX_BATCH_USERS)
    history: list[Id] | None = Field(None, max_length=MAX_HISTORY, description="Item ids, oldest first.")
    k: int = Field(10, ge=1, le=MAX_K)
    explain: bool = False
    user_features: dict[Id, Id | float | list[Id]] | None = Field(
        None,
        max_length=64,
        description='Demographics given now, {field: value} (e.g. {"gender": "F", "age": 25}), for the '
        "requests the model cannot personalise (unknown users, empty histories): they get the 'demographic' "
        "fallback when a value matches a group of the run's --users file. Unknown fields and values are ignored.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> BatchRequest:
        if (self.users is None) == (self.history is None):
            raise ValueError("give exactly one of 'users' (a batch of user ids) or 'history' (anonymous session)")
        return self


class BatchResponse(BaseModel):
    model_version: str
    results: list[RecommendationResponse]


class HistoryResponse(BaseModel):
    user_id: str
    items: list[str] = Field(description="Training history followed by the stored events, oldest first.")


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_printable)] | None = (
        Field(None, description="Run folder to serve; omitted = reload the folder served now.")
    )


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str | None
    run_dir: str


class StatusResponse(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None
