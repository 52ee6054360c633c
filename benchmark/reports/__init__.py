"""Reproduction reports: each runs (or resumes) a fixed matrix and writes a markdown page from its records."""
