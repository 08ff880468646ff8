"""Ed25519 signatures over a bundle's manifest, which covers every file by sha256.

Checksums in the bucket catch accidents; anyone who can write to the bucket can recompute
them. A signature can only come from the holder of the private key (the training role), so the
service loads nothing a bucket writer made up. What is signed is `DOMAIN + manifest sha256`,
so a signature means "this manifest, as a fraud-scoring bundle" and nothing else.

The service trusts the public keys in `FRAUD_TRUSTED_KEYS`: comma-separated, each a PEM file
path or the base64 of the 32 raw key bytes; several at once for rotation. A key's id is the
first 16 hex digits of the sha256 of its raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ml.runtime.untrusted_json import parse_object

DOMAIN = b"fraud-scoring bundle manifest v1\n"
ALGORITHM = "ed25519"


class SignatureError(Exception):
    """A bundle whose signatures do not vouch for it; `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def key_id(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def signed_message(manifest_sha256: str) -> bytes:
    return DOMAIN + manifest_sha256.encode("ascii")


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


RAW_KEY_BASE64 = re.compile(r"^[A-Za-z0-9+/]{43}=$")  # 32 bytes


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """The base64 of 32 raw bytes, PEM text, or a PEM file path."""
    text = text.strip()
    if RAW_KEY_BASE64.match(text):
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))
    if text.startswith("-----BEGIN"):
        return _from_pem(text.encode())
    try:
        data = Path(text).read_bytes()
    except OSError as exc:
        raise ValueError(
            f"{text[:60]!r} is neither the base64 of a 32-byte Ed25519 key nor a readable PEM "
            f"file ({exc.strerror})"
        ) from None
    return _from_pem(data)


def _from_pem(data: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class TrustedKeys:
    keys: dict[str, Ed25519PublicKey]  # key id -> key

    @classmethod
    def parse(cls, setting: str) -> TrustedKeys:
        keys = {}
        for item in (part for part in setting.split(",") if part.strip()):
            key = public_key_from_text(item)
            keys[key_id(raw_public_bytes(key))] = key
        if not keys:
            raise ValueError("no trusted public keys given")
        return cls(keys)

    def verify(self, manifest_sha256: str, signatures: list[bytes]) -> str:
        """The id of a trusted key whose valid signature covers this manifest; raises
        `SignatureError` (unsigned, untrusted_key, bad_signature) otherwise."""
        if not signatures:
            raise SignatureError("unsigned", "the bundle has no signatures")
        seen, failed = [], []
        for data in signatures:
            try:
                entry = parse_object(data)
                signer = str(entry["key_id"])
                signature = base64.b64decode(entry["signature"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error):
                failed.append("a malformed signature file")
                continue
            seen.append(signer)
            key = self.keys.get(signer)
            if key is None:
                continue
            try:
                key.verify(signature, signed_message(manifest_sha256))
            except InvalidSignature:
                failed.append(f"the signature by trusted key {signer}")
                continue
            return signer
        if failed:
            raise SignatureError(
                "bad_signature",
                f"{'; '.join(failed)} does not match this manifest (tampered, or made for "
                "another manifest)",
            )
        raise SignatureError(
            "untrusted_key",
            f"signed only by keys this service does not trust ({', '.join(sorted(seen))}); "
            f"trusted: {', '.join(sorted(self.keys))}",
        )
