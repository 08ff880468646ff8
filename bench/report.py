"""`make bench`'s results as the Markdown table the README and docs/performance.md quote."""

from __future__ import annotations

import platform
import statistics
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| case | c | req/s | p50 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['case']} | {r['concurrency']} | {r['requests_per_s']:,} | {r['p50_ms']} | "
        f"{r['p99_ms']} | {r['non_2xx'] + r['socket_errors']} |"
        for r in results["table"]
    ]
    reload = results["reload"]
    explained = results["explain_in_process"]
    lines += [
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| c=32 throughput, ours / floor (median of {results['rounds']} rounds) | "
        f"{results['ratio_ours_to_floor_c32']} "
        f"({', '.join(str(x) for x in results['ratios_by_round_c32'])}) |",
        f"| batch of 1000 rows (median of {results['rounds']} rounds) | "
        f"{results['batch_rows_per_s']:,} rows/s "
        f"({', '.join(f'{x:,}' for x in results['batch_rows_per_s_by_round'])}) |",
        f"| batch of 1000 rows with explain 5, HTTP (median of {results['rounds']} rounds) | "
        f"{results['explain_batch_rows_per_s']:,} rows/s "
        f"({', '.join(f'{x:,}' for x in results['explain_batch_rows_per_s_by_round'])}) |",
        f"| explain 5, one row, in-process: p50 / p99 | "
        f"{explained['one_row_explain5_p50_ms']} / {explained['one_row_explain5_p99_ms']} ms |",
        f"| explain 5, 1000 rows, in-process | "
        f"{explained['rows_1000_explain5_rows_per_s']:,} rows/s |",
        f"| c=32 throughput, drift counted / not (median of {results['rounds']} rounds) | "
        f"{results['drift_on_to_off_c32']} "
        f"({', '.join(str(x) for x in results['drift_ratios_by_round_c32'])}) |",
        f"| worker CPU per request, drift counted / not | {results['drift_cpu_on_to_off']} "
        f"({statistics.median(results['drift_worker_cpu_us_per_request']['on']):.1f} / "
        f"{statistics.median(results['drift_worker_cpu_us_per_request']['off']):.1f} us) |",
        f"| drift counting in-process, per request (1-row micro-batches) | "
        f"{results['drift_in_process']['us_per_request_one_row_batches']} us, "
        f"{results['drift_share_of_worker_cpu']:.1%} of a request's worker CPU |",
        f"| console page with its files | {results['console_bytes']['total']:,} bytes |",
        f"| client.score, 1 caller | {results['client_score_rows_per_s']:,} rows/s |",
        f"| during {reload['cycles']} promote + reload cycles: non-2xx | {reload['non_2xx']} |",
        f"| p99 during reloads / steady p99 | {reload['p99_ratio']} "
        f"({reload['p99_ms']} / {reload['steady_p99_ms']} ms) |",
        "| cold start to /health/ready (median of 3) | "
        f"{results['cold_start_s']['ready_median']} s |",
        f"| RSS per worker | {', '.join(f'{x} MB' for x in results['worker_rss_mb'])} |",
        *_capture_rows(results["capture"], results["rounds"]),
        "",
        f"{results['date']}, {results['machine']['cpus']} x {results['machine']['cpu']}, "
        f"Python {results['machine']['python']}, load generator: {results['load_generator']} "
        f"on the same cores; server: {results['server_environment']}.",
    ]
    return "\n".join(lines)


def _capture_rows(capture: dict[str, Any], rounds: int) -> list[str]:
    cpu = capture["worker_cpu_us_per_request"]
    sigterm = capture["sigterm"]
    return [
        f"| c=32 throughput, capture on / off (median of {rounds} rounds) | "
        f"{capture['throughput_on_to_off_c32']} "
        f"({', '.join(str(x) for x in capture['ratios_by_round_c32'])}) |",
        f"| p99 at c=32, capture on / off | {capture['p99_on_to_off']} "
        f"({capture['p99_ms']['on']} / {capture['p99_ms']['off']} ms) |",
        f"| worker CPU per request, capture on / off | {statistics.median(cpu['on']):.1f} / "
        f"{statistics.median(cpu['off']):.1f} us |",
        f"| RSS per worker, capture on | "
        f"{', '.join(f'{x} MB' for x in capture['worker_rss_mb']['on'])} "
        f"(the shipper: {capture['shipper_rss_mb']} MB) |",
        f"| SIGTERM after load: rows answered / in the store / lost | {sigterm['answered']:,} / "
        f"{sigterm['in_store']:,} / {sigterm['lost']} |",
    ]
