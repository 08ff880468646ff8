"""server wing."""
