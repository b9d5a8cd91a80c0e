"""Circuits: the space of admissible circuits, validity criteria, and the exact census."""
