"""The training side's settings: every `FRAUD_*` variable a `fraudctl` command reads, in one
place (the service's are `service.settings`). A command's flags take their defaults from here;
an invalid value stops the command before any work, naming the variable.

Read afresh by each caller (`load_training_settings()`): `fraudctl run-local` sets the signing
key's variables for the promotion it runs, after the command line was parsed.

After `make run`, the local setup is the default: with no store or signing key named, a
`.local/store` and `.local/keys/signing.pem` under the working directory (`FRAUD_LOCAL_DIR`)
are used when they exist, so `fraudctl history` or `promote` need no flags there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ml.choices import DEFAULT_PREVALENCE, EVAL_DATA, TRAIN_DATA


class TrainingSettingsError(ValueError):
    """A `FRAUD_*` variable that does not parse; the message names each one."""


class TrainingSettings(BaseSettings):
    # An empty variable counts as unset, as a shell's `FRAUD_X= fraudctl ...` means.
    model_config = SettingsConfigDict(env_prefix="FRAUD_", env_ignore_empty=True, extra="ignore")

    # Data and store (`fraudctl retrain`, the training image's job).
    train_data: str = TRAIN_DATA
    eval_data: str = EVAL_DATA
    store_uri: str | None = None
    report_dir: Path | None = None

    # Training and the promotion gate.
    prevalence: float = Field(DEFAULT_PREVALENCE, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0)
    min_delta: float = 0.0
    # The share of paired resamples in which the candidate must beat production by min_delta.
    confidence: float = Field(0.9, gt=0.0, lt=1.0)
    max_prauc_drop: float | None = Field(None, ge=0.0)

    # Signing: a PEM file, PEM text, or (in AWS) a Secrets Manager id the job reads itself.
    signing_key_file: Path | None = None
    signing_key: SecretStr | None = None
    signing_key_secret: str | None = None
    keys_dir: Path | None = None  # compose: sign with DIR/signing.pem, made on first use
    public_key_out: Path | None = None

    # Who promoted (CI sets it), and telling running services to reload.
    promoted_by: str | None = None
    notify_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_api_key: SecretStr | None = None
    # The service's own admin keys: the first one works for --notify too.
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Where `make run` keeps its store and keys (`fraudctl run-local`).
    local_dir: Path = Path(".local")

    @model_validator(mode="after")
    def _local_defaults(self) -> TrainingSettings:
        """The local store and signing key, when nothing else is named and they exist."""
        store = self.local_dir / "store"
        if self.store_uri is None and store.is_dir():
            self.store_uri = f"file://{store.resolve()}"
        key = self.local_dir / "keys" / "signing.pem"
        named = self.signing_key_file or self.signing_key or self.signing_key_secret
        if not named and key.is_file():
            self.signing_key_file = key
        return self

    @field_validator("notify_urls", "admin_api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def notify_key(self) -> str | None:
        """The admin key `--notify` sends: FRAUD_ADMIN_API_KEY, else the service's first."""
        if self.admin_api_key is not None:
            return self.admin_api_key.get_secret_value()
        return self.admin_api_keys[0] if self.admin_api_keys else None


def load_training_settings() -> TrainingSettings:
    try:
        return TrainingSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"FRAUD_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}, "
            f"received {error.get('input')!r}"
            for error in exc.errors()
        )
        raise TrainingSettingsError(f"invalid settings: {problems}") from None
