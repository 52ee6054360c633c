"""Registered datasets: one module per dataset family, registered by name (``bench.datasets`` for plugins)."""
