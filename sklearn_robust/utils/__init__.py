"""Utilities shared across sklearn_robust."""
