"""`fraudctl labels import`, `replay` and `evaluate --live`: the decision log's loop.

fraudctl replay data/creditcard_eval.csv.gz --labels-out .local/eval-labels.csv
fraudctl labels import .local/eval-labels.csv
fraudctl evaluate --live
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.options import add_store, existing_store
from ml.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, print_json, say, table

if TYPE_CHECKING:
    from ml.settings import TrainingSettings


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    labels = commands.add_parser("labels", help="import what transactions turned out to be")
    actions = labels.add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    imports = actions.add_parser("import", help="a CSV or Parquet file of id,label[,labelled_at]")
    imports.add_argument("file", type=Path, help="columns: id, label (0/1), labelled_at (optional)")
    add_store(imports, settings)
    imports.set_defaults(handler=cmd_labels_import)

    replay = commands.add_parser(
        "replay", help="send labelled rows to a running service as traffic"
    )
    replay.add_argument("file", type=Path, help="a creditcard.csv-format file (Class optional)")
    replay.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    replay.add_argument("--batch-rows", type=int, default=200, help="rows per /predict/batch")
    replay.add_argument(
        "--id-prefix", help="ids are <prefix>-<row>; default replay-<UTC time>, new each run"
    )
    replay.add_argument(
        "--labels-out", type=Path, help="write the file's Class as labels (id,label) here"
    )
    replay.add_argument(
        "--wait-s",
        type=float,
        default=60.0,
        help="wait this long for every row to reach the store's decision log (0: do not wait)",
    )
    add_store(replay, settings)
    replay.set_defaults(handler=cmd_replay, local_dir=settings.local_dir)


def add_live_options(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument(
        "--live",
        action="store_true",
        help="judge the served models on the decision log joined with imported labels",
    )
    evaluate.add_argument("--since", default="30d", help="with --live: rows this recent (30d, 12h)")
    evaluate.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        help="with --live: where live-quality.json and .png go",
    )
    evaluate.add_argument(
        "--emf", action="store_true", help="with --live: also print CloudWatch EMF lines"
    )
    evaluate.add_argument(
        "--no-publish",
        action="store_true",
        help="with --live: do not write the summary the console shows to the store",
    )


def cmd_labels_import(args: argparse.Namespace) -> int:
    from ml.captures import captured_ids
    from ml.labels import LabelFileError, import_labels, read_label_file

    store = existing_store(args.store)
    try:
        read = read_label_file(args.file)
    except LabelFileError as exc:
        say(f"fraudctl labels import: {exc}")
        return EXIT_USAGE
    known = captured_ids(store)
    report = import_labels(store, read, known)
    say(
        f"{report.rows_read} rows read: {report.labels} labels ({report.frauds} frauds), "
        f"{report.duplicates} duplicate id(s) resolved latest-wins"
    )
    if report.unknown_ids:
        say(
            f"{report.unknown_ids} id(s) are not in the decision log (kept; the join ignores "
            f"them), e.g. {', '.join(report.unknown_examples)}"
        )
    say(f"written to {store.uri}/{report.key}" if report.key else "already imported: unchanged")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from ml.data import load_dataset
    from ml.replay import ReplayError, replay

    key = _api_key(args.local_dir / "keys" / "api-keys.json")
    if not key:
        say("fraudctl replay: set FRAUD_API_KEYS to a key the service accepts")
        return EXIT_USAGE
    data = load_dataset(args.file)
    prefix = args.id_prefix or f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    ids = [f"{prefix}-{i}" for i in range(data.n_rows)]
    started = time.monotonic()
    try:
        flagged = replay(args.url, key, ids, data.X.tolist(), args.batch_rows)
    except (ReplayError, OSError) as exc:
        say(f"fraudctl replay: {args.url}: {exc}")
        return EXIT_ERROR
    took = time.monotonic() - started
    say(f"replayed {len(ids)} rows in {took:.1f} s: {flagged} flagged; ids {prefix}-0 ...")
    if args.labels_out is not None:
        args.labels_out.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{tid},{int(y)}" for tid, y in zip(ids, data.y.tolist(), strict=True)]
        args.labels_out.write_text("id,label\n" + "\n".join(lines) + "\n")
        say(f"labels (the file's Class) in {args.labels_out}")
    if args.wait_s > 0 and not _wait_captured(args.store, set(ids), args.wait_s):
        return EXIT_ERROR
    return EXIT_OK


def _api_key(local_keys: Path) -> str:
    """FRAUD_API_KEYS' first key, else the one `make run` made (in its .local/)."""
    key = os.environ.get("FRAUD_API_KEYS", "").split(",")[0].strip()
    if not key and local_keys.is_file():
        key = str(json.loads(local_keys.read_text()).get("FRAUD_API_KEYS", "")).split(",")[0]
    return key


def _wait_captured(store_uri: str, ids: set[str], wait_s: float) -> bool:
    from ml.captures import captured_ids

    store = existing_store(store_uri)
    deadline = time.monotonic() + wait_s
    while True:
        found = len(ids & captured_ids(store))
        if found == len(ids):
            say(f"all {found} rows are in {store.uri}/captures/")
            return True
        if time.monotonic() > deadline:
            say(
                f"only {found} of {len(ids)} rows reached {store.uri}/captures/ within "
                f"{wait_s:g} s: is the service capturing (FRAUD_CAPTURE=1) into this store?"
            )
            return False
        time.sleep(1.0)


def cmd_evaluate_live(args: argparse.Namespace) -> int:
    import orjson

    from ml.captures import read_captures, since_ago
    from ml.labels import read_labels
    from ml.live import live_quality
    from ml.live_report import TABLE_HEADER, emf_documents, publish, table_rows, write_files

    if args.data is not None or args.bundle is not None:
        say("fraudctl evaluate --live: judges the decision log; --data and --bundle do not apply")
        return EXIT_USAGE
    try:
        since = since_ago(args.since)
    except ValueError as exc:
        say(f"fraudctl evaluate: {exc}")
        return EXIT_USAGE
    store = existing_store(args.store)
    started = time.monotonic()
    captures = read_captures(store, since)
    labels = read_labels(store)
    report = live_quality(captures, labels, args.prevalence, since, args.version)
    took = time.monotonic() - started
    paths = write_files(args.reports_dir, report)
    if not args.no_publish and report.versions:
        publish(store, report)
    if args.json:
        print_json(report.to_dict())
    else:
        print(
            f"decision log of {store.uri} since {args.since}: {report.captured_rows} rows, "
            f"{report.labels} labels ({took:.1f} s)"
        )
        print(table(table_rows(report), TABLE_HEADER))
        for v in report.versions:
            if v.note:
                print(f"{v.model_version}: {v.note}")
        say(f"report: {paths['json']}, {paths['plot']}")
    if args.emf:
        now_ms = int(time.time() * 1000)
        for document in emf_documents(
            report, os.environ.get("FRAUD_EMF_SERVICE", "fraud-api"), now_ms
        ):
            print(orjson.dumps(document).decode())
    return EXIT_OK
