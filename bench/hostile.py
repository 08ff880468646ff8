"""`make bench-hostile`: the adversarial cases of the reliability work rerun at scale against a
real `fraudctl serve` (2 workers, a file:// store, polling every 3 s), with an innocent client
scoring alongside. One table, also written to bench/results/hostile.json:

- hostile bodies (ml/testing/hostile.py), two at a time, each sent `--repeats` times:
  answers of 500 (must be 0) and the slowest innocent /predict meanwhile (must be <= 1 s);
- pointer writes in any order (promote, reload, write back an earlier pointer byte for byte):
  answers naming another version than production.json once one poll interval has passed;
- hostile store objects (a 1 GiB sparse manifest, a FIFO, nesting): statuses and the largest
  worker RSS (must stay < 150 MB);
- silent clients: connections opened and left idle, and how many are still open once the
  head timeout has passed.

127.0.0.1 only, bounded in count and time (about a minute); it stops what it started, by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ml.data import load_dataset
from ml.runtime.layout import MANIFEST_FILE, POINTER_KEY
from ml.runtime.local_store import LocalStore
from ml.testing.bundles import promote_files, signing_environment
from ml.testing.hostile import (
    HOSTILE_BODIES,
    STORE_DAMAGE,
    served_by_worker,
    worker_rss_mb,
    write_pointer_bytes,
)
from ml.testing.keys import ADMIN, AUTH
from ml.testing.processes import DEV_DATA, REPO
from ml.testing.server import PREDICT_BODY, Http, ServiceProcess, once, server_env
from ml.train import train_bundle

POLL_S = 3.0
HEAD_TIMEOUT_S = 2.0


class InnocentClient(threading.Thread):
    """Scores one row again and again on a kept-alive connection, timing each answer."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        with Http(self.port, timeout=30) as client:
            while not self.stopping.is_set():
                started = time.perf_counter()
                status, _ = client.request("POST", "/predict", PREDICT_BODY, AUTH)
                self.latencies.append(time.perf_counter() - started)
                self.statuses[status] += 1
                time.sleep(0.005)


def hostile_bodies(server: ServiceProcess, repeats: int) -> dict[str, Any]:
    innocent = InnocentClient(server.port)
    innocent.start()
    statuses: Counter[str] = Counter()
    wrong: list[str] = []

    def send(index: int) -> None:
        case = HOSTILE_BODIES[index % len(HOSTILE_BODIES)]
        status, _ = once(server.port, "POST", case.path, case.body, AUTH)
        statuses[str(status)] += 1
        if status != case.status:
            wrong.append(f"{case.name}: {status}")

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # two hostile requests in flight
            list(pool.map(send, range(repeats * len(HOSTILE_BODIES))))
    finally:
        innocent.stopping.set()
        innocent.join()
    return {
        "hostile_requests": sum(statuses.values()),
        "hostile_statuses": dict(statuses),
        "unexpected_statuses": wrong,
        "innocent_requests": len(innocent.latencies),
        "innocent_non_200": sum(n for s, n in innocent.statuses.items() if s != 200),
        "innocent_p50_ms": round(statistics.median(innocent.latencies) * 1000, 2),
        "innocent_max_ms": round(max(innocent.latencies) * 1000, 1),
    }


def pointer_sequences(
    server: ServiceProcess, store: LocalStore, versions: dict[str, bytes], cycles: int
) -> dict[str, Any]:
    """Each cycle: point at one version and reload, then write the other's pointer back byte
    for byte; one poll interval later every answer must name the latter."""
    wrong_answers = answers = 0
    names = list(versions)
    for cycle in range(cycles):
        first, then = names[cycle % 2], names[(cycle + 1) % 2]
        write_pointer_bytes(store, versions[first])
        once(server.port, "POST", "/reload", headers=ADMIN)
        write_pointer_bytes(store, versions[then])
        expected = json.loads(versions[then])["version"]
        time.sleep(POLL_S * 1.1 + 1.0)
        for _ in range(20):  # fresh connections reach both workers
            status, body = once(server.port, "POST", "/predict", PREDICT_BODY, AUTH)
            answers += 1
            wrong_answers += status != 200 or body["model_version"] != expected
        if set(served_by_worker(server).values()) != {expected}:
            wrong_answers += 1
    return {"cycles": cycles, "answers_checked": answers, "wrong_model_answers": wrong_answers}


def hostile_store(
    server: ServiceProcess, store: LocalStore, other_manifest: bytes
) -> dict[str, Any]:
    good = store.get(POINTER_KEY)
    outcomes, peak_rss = {}, 0.0
    for name, (damage, code) in STORE_DAMAGE.items():
        damage(store, other_manifest)
        try:
            status, body = once(server.port, "POST", "/reload", headers=ADMIN)
            time.sleep(POLL_S * 1.2)  # every worker's poll meets it too
            peak_rss = max(peak_rss, *worker_rss_mb(server))
            still = once(server.port, "POST", "/predict", PREDICT_BODY, AUTH)[0]
            outcomes[name] = {
                "reload": f"{status} {body['error']['code'] if status != 200 else 'ok'}",
                "expected": f"502 {code}",
                "predict_after": still,
            }
        finally:
            write_pointer_bytes(store, good)
    return {"cases": outcomes, "peak_worker_rss_mb": round(peak_rss, 1)}


def silent_clients(server: ServiceProcess, count: int) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        time.sleep(HEAD_TIMEOUT_S + 2.0)
        still_open = 0
        for sock in sockets:
            sock.setblocking(False)
            try:
                still_open += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                still_open += 1  # nothing to read, not closed
            except ConnectionResetError:
                pass
        return {"opened": count, "open_after_head_timeout": still_open}
    finally:
        for sock in sockets:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="sends of each hostile body")
    parser.add_argument("--cycles", type=int, default=6, help="pointer write sequences")
    parser.add_argument("--silent", type=int, default=2000, help="idle connections opened")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hostile.json")
    args = parser.parse_args()
    data = load_dataset(DEV_DATA)
    bundles = [train_bundle(data, seed=seed) for seed in (0, 1)]
    with tempfile.TemporaryDirectory(prefix="fraud-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(signing_environment(tmp / "keys"))
        store = LocalStore(tmp / "store")
        pointers = {}
        for files in bundles:
            promote_files(store, files)
            pointers[json.loads(files[MANIFEST_FILE])["version"]] = store.get(POINTER_KEY)
        env = server_env(
            store,
            FRAUD_MODEL_POLL_INTERVAL_S=str(POLL_S),
            FRAUD_HEADER_TIMEOUT_S=str(HEAD_TIMEOUT_S),
            FRAUD_LOG_LEVEL="warning",
        )
        server = ServiceProcess(tmp, env).start()
        try:
            server.wait_ready()
            results = {
                "bodies": hostile_bodies(server, args.repeats),
                "pointers": pointer_sequences(server, store, pointers, args.cycles),
                "store": hostile_store(server, store, bundles[1][MANIFEST_FILE]),
                "silent": silent_clients(server, args.silent),
                "idle_worker_rss_mb": [round(mb, 1) for mb in worker_rss_mb(server)],
            }
        finally:
            server.stop()
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
