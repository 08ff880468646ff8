"""Driving `fraudctl promote` the way a user does, and looking at what it left in a store."""

from __future__ import annotations

from pathlib import Path

from ml.build import write_bundle
from ml.cli import main
from ml.runtime.s3_store import S3Store
from ml.testing.processes import EVAL_DATA

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_KEPT = 0, 1, 2, 3


def bundle_dir(tmp_path: Path, files: dict[str, bytes], name: str) -> Path:
    write_bundle(tmp_path / name, files)
    return tmp_path / name


def snapshot(store: S3Store) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list_keys("")}


def promote(store: S3Store, candidate: Path, *extra: str, data: Path = EVAL_DATA) -> int:
    return main(
        [
            "promote",
            "--candidate",
            str(candidate),
            "--data",
            str(data),
            "--store",
            f"s3://{store.bucket}/fraud",
            *extra,
        ]
    )


def live_version(store: S3Store) -> str | None:
    pointer = store.current_pointer().pointer
    return pointer.version if pointer else None
