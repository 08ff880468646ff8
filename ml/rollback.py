"""Rollback: point production at an older version, with the same checks as a promotion (the
version must load and verify), signed with today's key, through the same compare-and-swap."""

from __future__ import annotations

from ml.errors import PromotionError
from ml.promote import who
from ml.runtime.bundle import load_version
from ml.runtime.history import record_history
from ml.runtime.store import ArtifactStore, Pointer, PointerConflict, utc_now
from ml.signing import sign_version, signing_key_from_env


def rollback(
    store: ArtifactStore, *, to: str | None = None, promoted_by: str | None = None
) -> Pointer:
    """Point production at an older version (default: the one before the current)."""
    state = store.current_pointer()
    if state.pointer is None:
        raise PromotionError(f"{store.uri} has no production model to roll back")
    target = to or state.pointer.previous_version
    if target is None:
        raise PromotionError(
            f"production {state.pointer.version} has no previous version; name one with --to"
        )
    if target == state.pointer.version:
        raise PromotionError(f"{target} is already production")
    signing_key = signing_key_from_env()
    bundle = load_version(store, target)  # never roll back onto a bundle that would not load
    # Signed with today's key: the version may predate a key rotation.
    signer = sign_version(store, target, signing_key, bundle.manifest_sha256)
    pointer = Pointer(
        version=bundle.version,
        manifest_sha256=bundle.manifest_sha256,
        previous_version=state.pointer.version,
        promoted_at=utc_now(),
        promoted_by=promoted_by or who(),
        action="rollback",
        details={"rolled_back_from": state.pointer.version, "signed_by": signer},
    )
    try:
        store.swap_pointer(pointer, expected_etag=state.etag)
    except PointerConflict:
        raise PromotionError("production changed during the rollback; nothing changed") from None
    record_history(store, pointer)
    return pointer
