"""Holding a limited number of valid circuits: a deep census counts first and lists only
when its valid circuits fit what is held, with the same counts and circuits either way."""

from __future__ import annotations

import numpy as np
from test_census import random_network, reference_census, xor_like_data

from circuit_census.circuits.census import census
from circuit_census.circuits.settings import CensusSettings, RunOptions


def seen_by(seen: list):
    """A progress callback recording its calls in ``seen``."""
    return lambda done, total: seen.append((done, total))


def test_a_deep_census_lists_exactly_when_its_valid_circuits_fit_what_is_held():
    rng = np.random.default_rng(7)
    for sizes in [(2, 3, 2, 1), (2, 2, 2, 2, 1)]:
        net = random_network(rng, sizes, "relu", "identity")
        x, y = xor_like_data(rng, sizes[0], sizes[-1])
        threshold = float(0.2 * np.var(net.forward(x)))
        settings = CensusSettings("mse", threshold, "zero")
        n_ref, valid_ref = reference_census(net, x, y, "zero", "mse", threshold)
        whole = census(net, x, y, settings, RunOptions())
        assert (whole.n_candidates, whole.n_valid) == (n_ref, len(valid_ref)) and n_ref > 0
        assert 0 < whole.n_valid < whole.n_candidates
        seen: list[tuple[int, int]] = []
        fits = census(
            net, x, y, settings, RunOptions(collect=whole.n_valid, progress=seen_by(seen))
        )
        assert np.array_equal(fits.valid, whole.valid) and fits.n_valid == whole.n_valid
        done = [d for d, _ in seen]
        assert done == sorted(done) and seen[-1] == (n_ref, n_ref)  # one bar for both passes
        seen.clear()
        over = census(
            net, x, y, settings, RunOptions(collect=whole.n_valid - 1, progress=seen_by(seen))
        )
        assert over.valid is None
        assert (over.n_candidates, over.n_valid) == (whole.n_candidates, whole.n_valid)
        assert seen[-1] == (n_ref, n_ref)
