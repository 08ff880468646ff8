"""Gunicorn configuration: the one serving command, used by `fraudctl serve` and the container.

    gunicorn --config python:service.server.gunicorn_conf 'service.app:app_from_env()'

Runs in the master before any worker starts, which is why the environment is prepared here:
one BLAS/OpenMP thread per worker (workers are the parallelism; threads would fight over the
cores), the Prometheus multiprocess directory, and the directory through which a reload reaches
every worker. Both directories are wiped at start so nothing stale from an earlier run counts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from service.observe.logging import gunicorn_json_logconfig
from service.server.accepting import ConnectionTable
from service.server.draining import ConnectionLimits
from service.settings import SettingsError, load_settings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

try:
    settings = load_settings()  # refuse to start on bad settings, naming the variable
except SettingsError as exc:
    sys.stderr.write(f"fraud-api: {exc}\n")
    raise SystemExit(2) from None

_runtime = settings.runtime_dir or Path(tempfile.mkdtemp(prefix="fraud-"))
_runtime_is_ours = settings.runtime_dir is None  # made here, so removed here at exit
# Read by prometheus_client and by each worker's Settings: they must be in the environment.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_runtime / "prometheus"))
os.environ.setdefault("FRAUD_COORDINATION_DIR", str(_runtime / "workers"))
# Not wiped at start: a task restarted during a store outage can still serve what it verified.
os.environ.setdefault("FRAUD_BUNDLE_CACHE_DIR", str(_runtime / "bundle-cache"))
# Not wiped either: rows a previous run left unshipped are shipped by this one.
os.environ.setdefault("FRAUD_CAPTURE_SPOOL_DIR", str(_runtime / "capture-spool"))
_capture_spool = Path(os.environ["FRAUD_CAPTURE_SPOOL_DIR"])

bind = settings.bind
workers = settings.workers
worker_class = "service.server.worker.FraudUvicornWorker"
graceful_timeout = round(settings.graceful_timeout_s)  # each worker's Uvicorn reads it too
timeout = 60  # a worker silent this long is restarted
keepalive = 75  # longer than the load balancer's idle timeout (60 s), so it closes first
accesslog = None  # one structured line per request comes from the app itself
errorlog = "-"
loglevel = settings.log_level
if settings.log_format == "json":  # Gunicorn's and Uvicorn's own lines as JSON too
    logconfig_dict = gunicorn_json_logconfig(settings.log_level)
proc_name = "fraud-api"
control_socket_disable = True  # unused, and it would need a writable $HOME


def on_starting(server: Any) -> None:
    """Master, once: wipe the shared directories, so nothing stale from an earlier run counts,
    then serve metrics on their own port (refusing to start if it is taken), and write them as
    CloudWatch EMF lines if asked (FRAUD_EMF_INTERVAL_S)."""
    # Imported here, after PROMETHEUS_MULTIPROC_DIR is set: prometheus_client picks its
    # storage when first imported, and workers inherit the master's modules.
    from service.observe.multiprocess import MetricsServer

    for variable in ("PROMETHEUS_MULTIPROC_DIR", "FRAUD_COORDINATION_DIR"):
        directory = Path(os.environ[variable])
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    host = settings.bind.rpartition(":")[0]
    try:
        server.fraud_metrics = MetricsServer.start(host, settings.metrics_port)
    except OSError as exc:
        sys.stderr.write(
            f"fraud-api: cannot serve metrics on {host}:{settings.metrics_port} ({exc.strerror}):"
            f" choose another port with FRAUD_METRICS_PORT\n"
        )
        on_exit(server)
        raise SystemExit(2) from None
    if settings.emf_interval_s > 0:
        from service.observe.emf import start_emf_thread

        server.fraud_emf = start_emf_thread(settings.emf_service, settings.emf_interval_s)
    if settings.capture:
        _start_shipper(server)


def _start_shipper(server: Any) -> None:
    """The decision log's shipper (service.server.shipper), after readying the spool files a
    previous run left open: no worker runs yet, so every open file is an orphan."""
    from prometheus_client import multiprocess

    from service.model.decision_log import ready_orphans
    from service.server.shipper_process import ShipperProcess

    ready_orphans(_capture_spool)
    server.fraud_shipper = ShipperProcess(on_exit=multiprocess.mark_process_dead)
    server.fraud_shipper.start()


def pre_fork(server: Any, worker: Any) -> None:
    """Master, before each fork: a slot in the table through which workers share how many
    connections each holds (service.server.accepting), so the next connection goes to the one
    holding the fewest; and the clients' time and connection limits (service.server.draining)."""
    worker.fraud_connection_limits = ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=settings.max_connections_per_worker,
    )
    if not hasattr(server, "fraud_connection_table"):
        # Twice the most workers allowed: a replacement may fork before its slot is freed.
        server.fraud_connection_table = ConnectionTable(slots=128)
    table = server.fraud_connection_table
    worker.fraud_connection_table = table
    worker.fraud_connection_slot = table.claim(
        getattr(w, "fraud_connection_slot", None) for w in server.WORKERS.values()
    )


def post_fork(server: Any, worker: Any) -> None:
    """Worker: the metrics socket is the master's; a worker holding a copy would keep the
    port bound after the master is gone."""
    metrics_server = getattr(server, "fraud_metrics", None)
    if metrics_server is not None:
        metrics_server.forget_in_child()
    shipper = getattr(server, "fraud_shipper", None)
    if shipper is not None:
        shipper.forget_in_child()


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker exits: its metrics stop counting as live, no reload waits for it,
    and its open spool file goes to the shipper."""
    from prometheus_client import multiprocess

    from service.model.coordination import remove_worker
    from service.model.decision_log import ready_orphans

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    ready_orphans(_capture_spool, worker.pid)  # a killed worker's answered rows are shipped
    server.fraud_connection_table.release(worker.fraud_connection_slot)
    remove_worker(Path(os.environ["FRAUD_COORDINATION_DIR"]), worker.pid)


def on_exit(server: Any) -> None:
    """Master, at exit, every worker stopped: the shipper ships the last captured rows; then
    a runtime folder made here (no FRAUD_RUNTIME_DIR) is not left behind."""
    shipper = getattr(server, "fraud_shipper", None)
    if shipper is not None:
        shipper.stop(settings.capture_drain_timeout_s + 5.0)  # + its own start-up, bounded
    if _runtime_is_ours:
        shutil.rmtree(_runtime, ignore_errors=True)
