"""Service settings, from environment variables prefixed `FRAUD_`.

Secrets (the API keys) have no default: the service does not start without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ml.runtime.signing import TrustedKeys

KeyList = Annotated[list[SecretStr], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FRAUD_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        arbitrary_types_allowed=True,
    )

    store_uri: str = Field(min_length=1)
    """Where models live: `s3://bucket/prefix`, `file:///dir` or a directory path."""

    api_keys: KeyList = Field(min_length=1)
    """Comma-separated keys accepted by /predict, /predict/batch and /model. Several keys let
    you rotate: add the new one, move clients, remove the old one."""

    admin_api_keys: KeyList = Field(min_length=1)
    """Comma-separated keys accepted by /reload."""

    trusted_keys: Annotated[TrustedKeys, NoDecode]
    """Public keys whose signatures the service accepts on a bundle's manifest: comma-separated,
    each a PEM file path or the base64 of the raw 32-byte Ed25519 key; several for rotation.
    No default: a service that loaded unsigned bundles would run whatever a bucket writer put
    there."""

    max_batch_rows: int = Field(default=1000, ge=1, le=100_000)
    """Most rows one /predict/batch request may carry (more: 413)."""

    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Largest request body accepted, checked before the body is read (more: 413)."""

    header_timeout_s: float = Field(default=10.0, gt=0.0, le=300.0)
    """A request's head (request line and headers) must arrive within this long of the
    connection opening or of the request's first byte; else 408 and the connection closes."""

    body_timeout_s: float = Field(default=15.0, gt=0.0, le=600.0)
    """A request's body must arrive within this long of its head (2 MB in 15 s is 140 KB/s)."""

    max_connections_per_worker: int = Field(default=1000, ge=1, le=100_000)
    """Connections one worker holds at most; past it, new ones wait in the kernel's queue for
    a worker with room."""

    bind: str = Field(default="0.0.0.0:8000", pattern=r"^\S+:\d{1,5}$")
    """host:port Gunicorn listens on. The container's default; `fraudctl serve` sets it."""

    workers: int = Field(default=2, ge=1, le=64, validation_alias="WEB_CONCURRENCY")
    """Gunicorn worker processes (`WEB_CONCURRENCY`, the common name): one per vCPU."""

    runtime_dir: Path | None = None
    """Where the master keeps the workers' shared files (metrics, reload marker); a fresh
    temporary directory when unset."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    store_connect_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)
    store_read_timeout_s: float = Field(default=3.0, gt=0.0, le=120.0)
    store_attempts: int = Field(default=2, ge=1, le=10)
    """Each S3 call: connect and read timeouts, and attempts in all. The defaults bound a call
    to a store that hangs at ~10 s, so /reload answers 503 rather than waiting."""

    store_object_timeout_s: float = Field(default=20.0, gt=0.0, le=600.0)
    """Most time one object's body may take to arrive, however it trickles in."""

    store_max_object_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    """Largest store object a worker reads (the real manifest.json is ~130 KB, model.npz
    ~115 KB); a larger one is refused unread, as is anything but a regular file. A bundle's
    serving files are further held to the sizes its signed manifest states."""

    model_poll_interval_s: float = Field(default=30.0, ge=0.0)
    """How often each worker checks production.json (+/- 10 % jitter); 0 disables polling."""

    startup_load_wait_s: float = Field(default=20.0, ge=0.0)
    """How long a starting worker waits for its first model before it accepts requests. A
    worker still starting accepts nothing, so the kernel gives connections to ready workers;
    past this bound it serves live-but-not-ready and keeps retrying in the background."""

    startup_retry_initial_s: float = Field(default=0.5, gt=0.0)
    startup_retry_max_s: float = Field(default=30.0, gt=0.0)
    """Backoff between attempts to load the first model while the store is unreachable."""

    coordination_dir: Path | None = None
    """A directory shared by the workers of one task, through which a reload reaches all of
    them. Set by the Gunicorn config; unset means a single process."""

    bundle_cache_dir: Path | None = None
    """Where each worker keeps the last verified bundle's files, to start from when the store
    is unreachable (verified exactly as from the store). Set by the Gunicorn config to the
    runtime directory's `bundle-cache`; unset means no cache."""

    peer_check_interval_s: float = Field(default=0.2, gt=0.0)
    """How often a worker looks at the shared reload marker (a local file stat)."""

    reload_wait_s: float = Field(default=5.0, ge=0.0)
    """How long /reload waits for the other workers of the task to confirm the new version."""

    metrics_port: int = Field(default=9090, ge=1, le=65535)
    """Where the Gunicorn master serves Prometheus metrics for all workers, on the host of
    FRAUD_BIND. A port of its own, as MLServer does: the load balancer forwards only the API
    port, so metrics reach scrapers inside the network and never the internet."""

    drift_window_s: float = Field(default=3600.0, ge=60.0, le=7 * 86400.0)
    """Drift (PSI) compares the live rows of this many seconds, each worker's, with the
    training rows (12 buckets, so the window slides in steps of a twelfth of it)."""

    emf_interval_s: float = Field(default=0.0, ge=0.0, le=3600.0)
    """How often the Gunicorn master writes one CloudWatch Embedded Metric Format line to
    stdout (reload failures, refusals, predictions, drift), for the awslogs driver to turn into
    metrics with no agent; 0 (the default outside ECS) writes none. The task definition sets 60."""

    emf_service: str = Field(default="fraud-api", min_length=1, max_length=250)
    """The `Service` dimension of those metrics: the ECS service's name."""

    graceful_timeout_s: float = Field(default=20.0, gt=0.0, lt=30.0)
    """On SIGTERM, how long in-flight requests may take to finish (ECS waits 30 s). Gunicorn's
    graceful timeout and each Uvicorn worker's shutdown timeout both come from it."""

    capture: bool = False
    """Record every scored row in the decision log (captures/ in the store, as Parquet): on in
    docker compose, ECS and `make run`; off elsewhere unless set."""

    capture_sample_rate: float = Field(default=1.0, gt=0.0, le=1.0)
    """The share of scored rows recorded, drawn at random row by row."""

    capture_store_uri: str | None = None
    """Where captured rows go; FRAUD_STORE_URI when unset."""

    capture_spool_dir: Path | None = None
    """The local directory where workers append rows for the shipper. Set by the Gunicorn
    config to the runtime directory's `capture-spool` when unset."""

    capture_spool_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    """How much the spool may hold while the store is down (~1 million rows at 512 MB: 541
    bytes each); past it the oldest files are dropped and counted."""

    capture_rotate_s: float = Field(default=5.0, gt=0.0, le=3600.0)
    """How long a worker appends to one spool file before handing it to the shipper: rows
    reach the store within about this long, plus a second."""

    capture_task_id: str | None = Field(default=None, max_length=64)
    """This task's name in captured files' keys; the host name when unset."""

    capture_drain_timeout_s: float = Field(default=5.0, ge=0.0, le=60.0)
    """At exit, after the workers stop, how long the shipper may take to ship what is left
    (ECS stops the task 30 s after SIGTERM: graceful timeout + this must stay below it)."""

    @field_validator("trusted_keys", mode="before")
    @classmethod
    def _parse_trusted_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return TrustedKeys.parse(value)  # a ValueError names what is wrong
        return value

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("api_keys", "admin_api_keys", mode="after")
    @classmethod
    def _refuse_placeholders(cls, keys: list[SecretStr]) -> list[SecretStr]:
        # As the full-stack template refuses its `changethis`: a copied .env.example must not
        # become a running service whose keys are public.
        for key in keys:
            if any(marker in key.get_secret_value().lower() for marker in PLACEHOLDER_MARKERS):
                raise ValueError(
                    "a placeholder from .env.example (it contains 'change-me'): set a key of "
                    "your own"
                )
        return keys


PLACEHOLDER_MARKERS = ("change-me", "changethis")


class SettingsError(Exception):
    """Start-up settings that are missing or invalid, each named by its variable."""


def load_settings() -> Settings:
    try:
        return Settings()  # values come from the environment
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "*"
            variable = name if name.isupper() else "FRAUD_" + name.upper()  # aliases are upper
            problems.append(f"{variable}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid service settings: " + "; ".join(problems)) from None
