"""api wing."""
