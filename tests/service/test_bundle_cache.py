"""Against a real `fraudctl serve` (2 workers) and a moto server of its own, stopped mid-test:
a worker that restarts while the store is down starts from the last verified bundle on disk."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest

from ml.runtime.s3_store import S3Store
from tests.support.app import AUTH
from tests.support.bundles import promote_files
from tests.support.processes import AWS_ENV, start_moto, stop_process
from tests.support.server import PREDICT_BODY, ServiceProcess, once, server_env

pytestmark = pytest.mark.slow


def test_a_worker_restarted_during_a_store_outage_serves_from_its_cache(
    tmp_path: Path, bundle_files: dict[str, bytes]
) -> None:
    moto, endpoint = start_moto(tmp_path / "moto.log")
    server = None
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket="outage")
        store = S3Store("outage", "fraud", client=client)
        version = promote_files(store, bundle_files)
        env = server_env(
            store, **AWS_ENV, AWS_ENDPOINT_URL_S3=endpoint, FRAUD_MODEL_POLL_INTERVAL_S="1"
        )
        server = ServiceProcess(tmp_path, env).start()
        server.wait_ready()
        stop_process(moto)  # the store is gone from here on

        killed = server.worker_pids()[0]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while killed in server.worker_pids() or server.loaded_workers() < 2:
            assert time.monotonic() < deadline, server.log()[-4000:]
            time.sleep(0.1)

        answers: Counter[tuple[int, str | None]] = Counter()
        for _ in range(60):  # fresh connections: both workers answer
            status, body = once(server.port, "POST", "/predict", PREDICT_BODY, AUTH)
            answers[(status, body.get("model_version"))] += 1
        assert answers == Counter({(200, version): 60})
        loaded_from_cache = [
            line
            for line in server.metrics().splitlines()
            if line.startswith('fraud_model_reloads_total{result="success",trigger="cache"}')
        ]
        assert [float(line.split()[-1]) for line in loaded_from_cache] == [1.0]
    finally:
        if server is not None:
            server.stop()
        stop_process(moto)
