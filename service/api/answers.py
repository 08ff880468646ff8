"""Response bodies, as OpenAPI documents them (the routes write the same JSON with orjson)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ml.runtime.store import Pointer


class Reason(BaseModel):
    feature: str = Field(description="A raw input: Time, V1..V28 or Amount.")
    value: float = Field(description="The value sent for it.")
    contribution: float = Field(
        description="How far it moved the log-odds from `base_value` (positive: towards fraud). "
        "Amount carries log(1 + Amount)'s share; Time, the time of day's (sine and cosine)."
    )


BASE_VALUE_FIELD = Field(
    default=None,
    description="With `explain`: the log-odds of a row the model knows nothing about (the "
    "training rows' average under the model).",
)
REASONS_FIELD = Field(
    default=None, description="With `explain`: the top inputs by |contribution|, largest first."
)


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "0056c854575f43089cbfca739526d3be",
                    "id": "tx-20261121-000042",
                    "model_version": "20261121T101500Z-3f9c2a1b",
                    "fraud_probability": 0.9987,
                    "is_fraud": True,
                    "threshold": 0.62,
                }
            ]
        }
    )

    request_id: str
    id: str | None = Field(
        default=None,
        description="The id you sent, echoed; absent if you sent none (the transaction's key "
        "is then `<request_id>:0`).",
    )
    model_version: str
    fraud_probability: float
    is_fraud: bool
    threshold: float
    base_value: float | None = BASE_VALUE_FIELD
    reasons: list[Reason] | None = REASONS_FIELD


class BatchPrediction(BaseModel):
    id: str | None = Field(
        default=None,
        description="When any row of the batch named its id: this row's, or "
        "`<request_id>:<row>` for a row that named none. Absent when no row did (each row's "
        "key is then `<request_id>:<row>`).",
    )
    fraud_probability: float
    is_fraud: bool
    base_value: float | None = BASE_VALUE_FIELD
    reasons: list[Reason] | None = REASONS_FIELD


class BatchResponse(BaseModel):
    request_id: str
    model_version: str
    threshold: float
    predictions: list[BatchPrediction]


class PromotionHistory(BaseModel):
    # The log's own record type (`ml.runtime.store.Pointer`), as every reader of it sees it.
    entries: list[Pointer] = Field(description="Newest first, at most 20.")
    unreadable: int = Field(description="Records of the log that are not valid records.")


class DriftReport(BaseModel):
    model_version: str
    monitored: bool = Field(description="False: the model carries no drift reference.")
    status: Literal["unmonitored", "collecting", "measured"] = Field(
        description="collecting: fewer live rows than `min_live_rows`, so no PSI yet; "
        "measured: PSI per input and for the score."
    )
    live_rows: int = Field(description="Live rows of the window, over all workers.")
    reference_rows: int | None = Field(description="Training rows the reference rests on.")
    psi: dict[str, float | None] = Field(
        description="PSI per input (Time as time of day) and for fraud_probability; null "
        "while collecting."
    )
    window_s: float
    levels: dict[str, float] = Field(description="watch and drift: where PSI starts to matter.")
    min_live_rows: int = Field(description="Below this many live rows PSI is mostly noise.")


class ErrorDetail(BaseModel):
    field: str
    problem: str
    received: Any = Field(
        default=None, description="What was sent there (a short text when JSON cannot say it)."
    )


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: invalid_input, unauthorized, ...")
    message: str
    details: list[ErrorDetail] | None = Field(
        default=None, description="At most 25 problems; the message gives the total."
    )


class ErrorBody(BaseModel):
    """Every error the service answers, whatever its status."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_input",
                        "message": "invalid request: features: expected exactly 30 numbers "
                        "(Time, V1..V28, Amount), received 3",
                        "details": [
                            {
                                "field": "features",
                                "problem": "expected exactly 30 numbers (Time, V1..V28, "
                                "Amount), received 3",
                                "received": "list",
                            }
                        ],
                    },
                    "request_id": "0056c854575f43089cbfca739526d3be",
                }
            ]
        }
    )

    error: ErrorInfo
    request_id: str | None


class LiveQualityVersion(BaseModel):
    model_version: str
    rows_scored: int
    labelled: int
    frauds: int
    labelled_share: float | None
    prevalence_observed: float | None
    label_delay_hours_p50: float | None
    label_delay_hours_p90: float | None
    precision: float | None = Field(description="Of the flagged labelled rows, the frauds.")
    recall: float | None
    f1: float | None = Field(description="At the prevalence observed; null with too few labels.")
    f1_interval_95: list[float] | None
    pr_auc: float | None
    f1_at_prevalence: float | None = Field(description="F1 reweighted to `prevalence`.")
    note: str = Field(description="What the figures mean, e.g. too few labels for a metric.")


class LiveQualityReport(BaseModel):
    generated_at: str
    prevalence: float
    versions: list[LiveQualityVersion]


class LiveQuality(BaseModel):
    status: Literal["ready", "none", "unreadable"] = Field(
        description="ready: a report; none: `fraudctl evaluate --live` has not run yet; "
        "unreadable: the newest summary in the store is not one (`problem` says why)."
    )
    report: LiveQualityReport | None
    problem: str | None
