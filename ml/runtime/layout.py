"""Where things live in a store, stated once. Every backend and every reader uses these names.

    models/<version>/preprocessor.json, model.npz      the serving form (numbers and JSON)
    models/<version>/model.joblib, preprocessor.joblib  audit copies, for training-side use
    models/<version>/manifest.json                      vouches for all of the above by sha256
    models/<version>/signatures/<key id>.json           Ed25519 signatures of the manifest
    production.json                                     (compare-and-swap)
    history/<time>-<action>-<version>.json              (create-only log: promote,
                                                         force-promote, rollback, keep, migrate)

Everything under models/ is create-only. A version's files are uploaded in `BUNDLE_FILES`
order, manifest last, then its signatures. The service reads the manifest and signatures
first, then only `SERVING_FILES`: it never fetches, let alone unpickles, the joblib copies.
"""

from __future__ import annotations

from typing import Final

MANIFEST_FILE: Final = "manifest.json"
MODEL_FILE: Final = "model.npz"
PREPROCESSOR_FILE: Final = "preprocessor.json"
SERVING_FILES: Final = (PREPROCESSOR_FILE, MODEL_FILE)
AUDIT_MODEL_FILE: Final = "model.joblib"
AUDIT_PREPROCESSOR_FILE: Final = "preprocessor.joblib"
AUDIT_FILES: Final = (AUDIT_MODEL_FILE, AUDIT_PREPROCESSOR_FILE)
ARTIFACT_FILES: Final = (*AUDIT_FILES, *SERVING_FILES)
BUNDLE_FILES: Final = (*ARTIFACT_FILES, MANIFEST_FILE)  # upload order: manifest last
SIGNATURES_DIR: Final = "signatures"

POINTER_KEY: Final = "production.json"
MODELS_PREFIX: Final = "models/"
HISTORY_PREFIX: Final = "history/"


def version_key(version: str, name: str) -> str:
    """The key of one file of one version: `models/<version>/<name>`."""
    return f"{MODELS_PREFIX}{version}/{name}"


def signature_key(version: str, key_id: str) -> str:
    return version_key(version, f"{SIGNATURES_DIR}/{key_id}.json")
