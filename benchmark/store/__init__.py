"""Persistence: atomic writes, locks, record schemas, the results store and the checkpoint cache."""
