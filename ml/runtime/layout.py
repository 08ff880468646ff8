"""Where things live in a store, stated once. Every backend and every reader uses these names.

    models/<version>/model.joblib, preprocessor.joblib, manifest.json   (create-only)
    production.json                                                     (compare-and-swap)
    history/<time>-<action>-<version>.json                              (create-only log:
                                                   promote, force-promote, rollback, keep)

A version's files are uploaded in `BUNDLE_FILES` order, manifest last: the manifest vouches for
the others by sha256, so a reader that finds it knows the rest are complete.
"""

from __future__ import annotations

from typing import Final

MANIFEST_FILE: Final = "manifest.json"
MODEL_FILE: Final = "model.joblib"
PREPROCESSOR_FILE: Final = "preprocessor.joblib"
ARTIFACT_FILES: Final = (MODEL_FILE, PREPROCESSOR_FILE)
BUNDLE_FILES: Final = (*ARTIFACT_FILES, MANIFEST_FILE)  # upload order: manifest last

POINTER_KEY: Final = "production.json"
MODELS_PREFIX: Final = "models/"
HISTORY_PREFIX: Final = "history/"


def version_key(version: str, name: str) -> str:
    """The key of one file of one version: `models/<version>/<name>`."""
    return f"{MODELS_PREFIX}{version}/{name}"
