"""Signing bundles: the training side of `ml.runtime.signing`.

The private key comes from `FRAUD_SIGNING_KEY_FILE` (a PEM path), `FRAUD_SIGNING_KEY` (PEM
text) or, in AWS, `FRAUD_SIGNING_KEY_SECRET`: a Secrets Manager secret only the training task
role can read, fetched by the job itself. `fraudctl promote`,
`rollback`, `sign` and `migrate` sign what they make live; nothing else needs the key.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ml.errors import PromotionError
from ml.runtime.bundle import sha256_hex
from ml.runtime.layout import MANIFEST_FILE, signature_key, version_key
from ml.runtime.signing import ALGORITHM, key_id, raw_public_bytes, signed_message
from ml.runtime.store import ArtifactStore
from ml.runtime.versions import put_create_only
from ml.settings import load_training_settings

KEY_FILE_VARIABLE = "FRAUD_SIGNING_KEY_FILE"
KEY_VARIABLE = "FRAUD_SIGNING_KEY"
# A Secrets Manager id, read by the job itself (the variable's name, not a secret).
KEY_SECRET_VARIABLE = "FRAUD_SIGNING_KEY_SECRET"  # noqa: S105
NO_KEY = (
    f"signing needs the private key: set {KEY_FILE_VARIABLE} (a PEM file) or {KEY_VARIABLE} "
    "(PEM text); `fraudctl keys generate --out DIR` makes a pair"
)


def signing_key_from_env() -> Ed25519PrivateKey:
    """The private key the settings name (`ml.settings`), read now."""
    settings = load_training_settings()
    path, secret = settings.signing_key_file, settings.signing_key_secret
    text = settings.signing_key.get_secret_value() if settings.signing_key else None
    if secret and not (path or text):
        # Read by the training task's own role: the API's roles cannot read this secret.
        text = _read_secret(secret)
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise PromotionError(f"{KEY_FILE_VARIABLE}={path}: {exc.strerror}") from None
        where = f"{KEY_FILE_VARIABLE}={path}"
    elif text:
        data, where = text.encode(), KEY_VARIABLE
    else:
        raise PromotionError(NO_KEY)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PromotionError(f"{where} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PromotionError(f"{where} is not an Ed25519 key")
    return key


def _read_secret(secret_id: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as exc:
        raise PromotionError(f"{KEY_SECRET_VARIABLE}={secret_id}: {exc}") from None
    return str(response.get("SecretString", ""))


def signature_file(key: Ed25519PrivateKey, manifest_sha256: str) -> tuple[str, bytes]:
    """(key id, the signature file's bytes). Ed25519 is deterministic: signing the same
    manifest with the same key again gives the same bytes, so re-signing is idempotent."""
    kid = key_id(raw_public_bytes(key.public_key()))
    entry = {
        "algorithm": ALGORITHM,
        "key_id": kid,
        "manifest_sha256": manifest_sha256,
        "signature": base64.b64encode(key.sign(signed_message(manifest_sha256))).decode(),
    }
    return kid, json.dumps(entry, indent=2, sort_keys=True).encode() + b"\n"


def sign_version(
    store: ArtifactStore,
    version: str,
    key: Ed25519PrivateKey,
    manifest_sha256: str | None = None,
) -> str:
    """Add this key's signature to a published version (create-only); return the key id.
    Give the manifest's sha256 when the caller has just verified that manifest: it signs what
    was checked, and the manifest is not fetched again."""
    manifest_sha = manifest_sha256 or sha256_hex(store.get(version_key(version, MANIFEST_FILE)))
    kid, data = signature_file(key, manifest_sha)
    put_create_only(store, signature_key(version, kid), data)
    return kid


def generate_keys(directory: Path) -> tuple[Path, Path, str]:
    """Write signing.pem (private, mode 0600) and signing.pub; return their paths and the
    public key's base64 (what FRAUD_TRUSTED_KEYS takes). Refuses to overwrite a key."""
    private, public = directory / "signing.pem", directory / "signing.pub"
    if private.exists():
        raise PromotionError(f"{private} exists; move it away to make a new pair")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public, base64.b64encode(raw_public_bytes(key.public_key())).decode()


def ensure_keys(directory: Path) -> tuple[Path, Path, bool]:
    """The pair in `directory`, made on first use: (private path, public path, made now).
    `make run` keeps it under .local/keys; compose in a volume the API reads the .pub from."""
    private, public = directory / "signing.pem", directory / "signing.pub"
    if private.exists() and public.exists():
        return private, public, False
    made_private, made_public, _ = generate_keys(directory)
    return made_private, made_public, True
