"""Errors shared across `ml` that must be importable without the training stack."""


class PromotionError(Exception):
    """A promotion or rollback could not be carried out; nothing in the store was changed."""
