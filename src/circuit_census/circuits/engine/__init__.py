"""The census engine: how every admissible circuit is scored without one forward pass each
(problem, plan, bounds, pairs, blocks, parallel; kernels and torch_pairs score).
"""
