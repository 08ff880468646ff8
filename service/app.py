"""The application factory. Nothing here runs at import time: `create_app` builds an app from
its settings and collaborators, and the lifespan starts loading the model in the background, so
the process is live at once and ready when a verified model is in place."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from ml.runtime.bundle_cache import BundleCache
from ml.runtime.store import ArtifactReader, StoreTimeouts
from ml.runtime.store_uri import open_reader
from service.api.auth import KeyRing
from service.api.console import mount_console
from service.api.direct import include_direct_routes
from service.api.errors import install_error_handlers
from service.api.middleware import RequestMiddleware
from service.api.openapi import install_contract
from service.api.routes import router, scoring_router
from service.api.state import ServiceState
from service.model.coordination import PeerChannel
from service.model.dataplane import DataPlane
from service.model.decision_log import DecisionLog
from service.model.registry import ModelRegistry
from service.observe.logging import FLUSH_INTERVAL_S, configure_logging, flush_logs, get_logger
from service.observe.metrics import Metrics
from service.server.memory import release_free_memory
from service.settings import Settings, load_settings

log = get_logger("service.app")

API_DESCRIPTION = (
    "Scores credit-card transactions (Time, V1..V28, Amount) for fraud. Send the key in "
    "`X-API-Key` (Authorize). Every error has one shape: `{error: {code, message, details}, "
    "request_id}`. Metrics are served on their own port (FRAUD_METRICS_PORT), not here."
)


def create_app(
    settings: Settings,
    *,
    store: ArtifactReader | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    timeouts = StoreTimeouts(
        settings.store_connect_timeout_s,
        settings.store_read_timeout_s,
        settings.store_attempts,
        settings.store_object_timeout_s,
    )
    if store is None:
        store = open_reader(settings.store_uri, timeouts, settings.store_max_object_bytes)
    metrics = metrics if metrics is not None else Metrics()
    peers = PeerChannel(settings.coordination_dir) if settings.coordination_dir else None
    cache = BundleCache(settings.bundle_cache_dir) if settings.bundle_cache_dir else None
    registry = ModelRegistry(
        store,
        metrics,
        settings.trusted_keys,
        peers=peers,
        cache=cache,
        poll_interval_s=settings.model_poll_interval_s,
        peer_check_interval_s=settings.peer_check_interval_s,
        reload_wait_s=settings.reload_wait_s,
        retry_initial_s=settings.startup_retry_initial_s,
        retry_max_s=settings.startup_retry_max_s,
    )
    decisions = None
    if settings.capture:
        if settings.capture_spool_dir is None:
            raise ValueError("FRAUD_CAPTURE needs FRAUD_CAPTURE_SPOOL_DIR (Gunicorn sets it)")
        decisions = DecisionLog(
            settings.capture_spool_dir,
            metrics,
            sample_rate=settings.capture_sample_rate,
            # Eight files at least fit in the spool, so a full one drops in small steps.
            max_file_bytes=min(8 * 1024 * 1024, settings.capture_spool_max_bytes // 8),
        )
    plane = DataPlane(
        registry,
        metrics,
        max_batch_rows=settings.max_batch_rows,
        drift_window_s=settings.drift_window_s,
        decisions=decisions,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("starting", store=store.uri, workers_shared_dir=str(settings.coordination_dir))
        registry.start()
        if not await registry.wait_first_load(settings.startup_load_wait_s):
            log.warning("serving_without_model", reason=registry.not_ready_reason)
        # Imports and the bundle leave ~150k long-lived objects that every full cyclic
        # collection would scan (47 ms here): a p99 spike each time. Freeze them once.
        gc.collect()
        gc.freeze()
        release_free_memory()
        flusher = asyncio.create_task(
            _housekeeping(plane, settings.capture_rotate_s), name="housekeeping"
        )
        try:
            yield
        finally:
            if decisions is not None:  # every answered row is in the spool: hand it over
                decisions.close()
            await registry.stop()
            log.info("stopped")
            flusher.cancel()
            flush_logs()

    # Swagger UI from a package (fastapi-offline), not a CDN: /docs works air-gapped.
    app = FastAPIOffline(
        title="Fraud scoring",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        static_url="/docs/static",
        favicon_url="/docs/static/favicon.png",
        swagger_ui_parameters={"persistAuthorization": False, "tryItOutEnabled": True},
    )
    app.state.service = ServiceState(
        settings=settings,
        keys=KeyRing(settings.api_keys, settings.admin_api_keys),
        dataplane=plane,
        metrics=metrics,
    )
    install_error_handlers(app)
    install_contract(app, max_batch_rows=settings.max_batch_rows)
    app.include_router(router)
    include_direct_routes(app, scoring_router)
    mount_console(app)
    # Added last, so outermost: request ids, guards and the access log cover direct routes too.
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        routes=app.routes,
    )
    return app


# Every this many log flushes (0.2 s each), freed heap goes back to the OS: ~10 s.
TRIM_EVERY_FLUSHES = 50


async def _housekeeping(plane: DataPlane, capture_rotate_s: float) -> None:
    """Every 0.2 s: buffered log lines out, live rows into the drift bins, a spool file old
    enough to the shipper; freed heap back to the OS every ~10 s, or at once after a large
    batch (the worker that served batches stayed 1-5 MB above 100 MB until the next periodic
    trim)."""
    flushes = 0
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        flush_logs()
        plane.drift.flush(plane.serving())
        if plane.decisions is not None:
            plane.decisions.rotate_if_older(capture_rotate_s)
        flushes += 1
        if plane.heap_grew or flushes % TRIM_EVERY_FLUSHES == 0:
            plane.heap_grew = False
            release_free_memory()


def app_from_env() -> FastAPI:
    """Entry point for Gunicorn (`service.app:app_from_env()`): settings from FRAUD_* vars."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
