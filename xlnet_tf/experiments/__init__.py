"""Experiments that use the library end to end (kept apart from the model code)."""
