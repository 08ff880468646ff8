"""The fraud-scoring HTTP service."""
