"""Request and response bodies. Feature values must be finite JSON numbers: strings, booleans,
NaN and infinities are refused, naming the field."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ml.runtime.schema import FEATURE_NAMES

FiniteNumber = Annotated[float, Strict(), AllowInfNan(False)]
FeatureArray = Annotated[
    list[FiniteNumber],
    Field(
        min_length=len(FEATURE_NAMES),
        max_length=len(FEATURE_NAMES),
        description="30 numbers in the order Time, V1..V28, Amount.",
    ),
]

# {"Time": .., "V1": .., .., "Amount": ..}: every feature required, nothing else allowed.
NamedTransaction: type[BaseModel] = create_model(
    "NamedTransaction",
    __config__=ConfigDict(extra="forbid"),
    **{name: (FiniteNumber, ...) for name in FEATURE_NAMES},  # type: ignore[call-overload]
)


def _row_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "named"
    return None


Row = Annotated[
    Annotated[FeatureArray, Tag("array")] | Annotated[NamedTransaction, Tag("named")],
    Discriminator(
        _row_kind,
        custom_error_type="row_type",
        custom_error_message="each row must be an array of 30 numbers or an object of features",
    ),
]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: FeatureArray | None = None
    transaction: NamedTransaction | None = None
    threshold: Annotated[float, Strict(), Field(gt=0.0, lt=1.0)] | None = Field(
        default=None, description="Overrides the model's decision threshold for this request."
    )

    @model_validator(mode="after")
    def _exactly_one_form(self) -> PredictRequest:
        if (self.features is None) == (self.transaction is None):
            # A PydanticCustomError, so the message reaches the client without pydantic's
            # "Value error, " prefix.
            raise PydanticCustomError(
                "one_form",
                "send exactly one of 'features' (array) or 'transaction' (object)",
            )
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: list[Row]
    threshold: Annotated[float, Strict(), Field(gt=0.0, lt=1.0)] | None = Field(
        default=None, description="Overrides the model's decision threshold for these rows."
    )


class PredictResponse(BaseModel):
    request_id: str
    model_version: str
    fraud_probability: float
    is_fraud: bool
    threshold: float


class BatchPrediction(BaseModel):
    fraud_probability: float
    is_fraud: bool


class BatchResponse(BaseModel):
    request_id: str
    model_version: str
    threshold: float
    predictions: list[BatchPrediction]
