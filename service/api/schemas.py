"""Request bodies. Feature values must be finite JSON numbers: strings, booleans, NaN and
infinities are refused, naming the field. The answers are in `service.api.answers`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    FailFast,
    Field,
    JsonValue,
    Strict,
    Tag,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ml.runtime.schema import FEATURE_NAMES

# Real rows of the committed evaluation sample (the same as examples/one-array.json and
# examples/should-flag.json; tests/service/api/test_openapi.py holds them equal).
EXAMPLE_FEATURES: list[JsonValue] = [
    0.0,
    -1.3598071336738,
    -0.0727811733098497,
    2.53634673796914,
    1.37815522427443,
    -0.338320769942518,
    0.462387777762292,
    0.239598554061257,
    0.0986979012610507,
    0.363786969611213,
    0.0907941719789316,
    -0.551599533260813,
    -0.617800855762348,
    -0.991389847235408,
    -0.311169353699879,
    1.46817697209427,
    -0.470400525259478,
    0.207971241929242,
    0.0257905801985591,
    0.403992960255733,
    0.251412098239705,
    -0.018306777944153,
    0.277837575558899,
    -0.110473910188767,
    0.0669280749146731,
    0.128539358273528,
    -0.189114843888824,
    0.133558376740387,
    -0.0210530534538215,
    149.62,
]
EXAMPLE_TRANSACTION: dict[str, JsonValue] = {
    "Time": 152058.0,
    "V1": -3.57636177773708,
    "V2": 3.29943622098785,
    "V3": -7.46043319687438,
    "V4": 7.78363417666419,
    "V5": -0.398548657536885,
    "V6": -1.96844144838725,
    "V7": -3.11047619254795,
    "V8": -0.328403695377149,
    "V9": -1.57436284547485,
    "V10": -2.49756054724841,
    "V11": 4.60417047790948,
    "V12": -9.0019148555682,
    "V13": -1.27632400546329,
    "V14": -13.9694706254616,
    "V15": 1.25694535316357,
    "V16": -4.49162922501012,
    "V17": -5.96998693103967,
    "V18": -1.27466622002178,
    "V19": 1.14778361222539,
    "V20": -0.181455201194929,
    "V21": 0.540730752300116,
    "V22": 0.719526342466937,
    "V23": 0.379248749413946,
    "V24": -0.616961860032022,
    "V25": -0.44281081400968,
    "V26": 0.359840688732324,
    "V27": -2.65182487459349,
    "V28": 0.422184391599186,
    "Amount": 1.0,
}

FiniteNumber = Annotated[float, Strict(), AllowInfNan(False)]
FeatureArray = Annotated[
    list[FiniteNumber],
    Field(
        min_length=len(FEATURE_NAMES),
        max_length=len(FEATURE_NAMES),
        description="30 numbers in the order Time, V1..V28, Amount.",
    ),
]

# The client's own name for a transaction: what chargebacks and analysts' verdicts name, and
# so what labels will join on. Printable ASCII without spaces: safe in logs, CSV and keys.
TransactionId = Annotated[str, Strict(), Field(min_length=1, max_length=64, pattern=r"^[!-~]+$")]
ID_FIELD = Field(
    default=None,
    description="Your id for this transaction (1 to 64 printable ASCII characters, no spaces), "
    "echoed in the answer. Without it the transaction's key is `<request_id>:0`.",
)

# {"Time": .., "V1": .., .., "Amount": ..}: every feature required, nothing else allowed.
NamedTransaction: type[BaseModel] = create_model(
    "NamedTransaction",
    __config__=ConfigDict(extra="forbid"),
    **{name: (FiniteNumber, ...) for name in FEATURE_NAMES},  # type: ignore[call-overload]
)
# A batch row by name may carry its id too (a row as an array has none: its answer's id is
# `<request_id>:<row>`). On /predict the id is the body's own `id`.
NamedRow: type[BaseModel] = create_model(
    "NamedRow",
    __base__=NamedTransaction,
    id=(
        TransactionId | None,
        Field(
            default=None,
            description="Your id for this row (1 to 64 printable ASCII characters, no spaces), "
            "echoed in its answer. Without it the row's id is `<request_id>:<row>`.",
        ),
    ),
)


def _row_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "named"
    return None


Row = Annotated[
    Annotated[FeatureArray, Tag("array")] | Annotated[NamedRow, Tag("named")],
    Discriminator(
        _row_kind,
        custom_error_type="row_type",
        custom_error_message="each row must be an array of 30 numbers or an object of features",
    ),
]


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: 2 and 2.0 alike (schemathesis sends the latter); no strings, no
    booleans, no fractions."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


Threshold = Annotated[float, Strict(), Field(gt=0.0, lt=1.0)]

Explain = Annotated[int, Field(ge=0, le=len(FEATURE_NAMES)), BeforeValidator(_whole_number)]
EXPLAIN_FIELD = Field(
    default=0,
    description="Answer with the k inputs that moved each row's log-odds most (0: none). "
    f"{len(FEATURE_NAMES)} gives every input: their contributions plus `base_value` are the "
    "row's log-odds.",
)


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["features"]}, {"required": ["transaction"]}],
            "examples": [{"features": EXAMPLE_FEATURES}, {"transaction": EXAMPLE_TRANSACTION}],
        },
    )

    features: FeatureArray | None = None
    transaction: NamedTransaction | None = None
    id: TransactionId | None = ID_FIELD
    threshold: Threshold | None = Field(
        default=None, description="Overrides the model's decision threshold for this request."
    )
    explain: Explain = EXPLAIN_FIELD

    @field_validator("features", "transaction", mode="before")
    @classmethod
    def _absent_not_null(cls, value: Any) -> Any:
        # Absent means None; an explicit null is refused, as the documented schema says.
        if value is None:
            raise PydanticCustomError("not_null", "leave the field out rather than send null")
        return value

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


BATCH_THRESHOLD_FIELD = Field(
    default=None, description="Overrides the model's decision threshold for these rows."
)


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"transactions": [EXAMPLE_FEATURES, EXAMPLE_TRANSACTION]}],
        },
    )

    # Validation stops at the first invalid row: describing every bad value of 1,000 bad rows
    # held a worker's loop for 70-140 ms (30,000 errors); one row's problems are a few.
    transactions: Annotated[list[Row], FailFast()]
    threshold: Threshold | None = BATCH_THRESHOLD_FIELD
    explain: Explain = EXPLAIN_FIELD


class BatchOptions(BaseModel):
    """A batch's fields besides its rows, validated as in `BatchRequest` (for bodies whose
    rows service/api/batch_parsing.py reads itself)."""

    model_config = ConfigDict(extra="forbid")

    threshold: Threshold | None = BATCH_THRESHOLD_FIELD
    explain: Explain = EXPLAIN_FIELD
