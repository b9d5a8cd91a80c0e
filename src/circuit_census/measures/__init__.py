"""Uniqueness measures of a census (minimal circuits, overlap, frequencies) and its figures."""
