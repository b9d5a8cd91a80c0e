"""The census engine: how every admissible circuit is scored without one forward pass each."""
