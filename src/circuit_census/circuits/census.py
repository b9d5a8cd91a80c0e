"""Exact circuit census (placeholder while the engine is written)."""
