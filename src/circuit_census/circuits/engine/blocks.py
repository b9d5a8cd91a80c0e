"""One process's pass over its work units: each block of half A's rows is settled by bounds
where they reach and by pair scoring elsewhere; its valid circuits are counted and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from circuit_census.circuits.engine.bounds import Bounds, make_bounds, pair_verdicts, row_verdicts
from circuit_census.circuits.engine.families import (
    Base,
    Decided,
    WorkUnit,
    members,
    prefix_units,
    split_base,
    work_units,
)
from circuit_census.circuits.engine.last_layers import census_last_layers
from circuit_census.circuits.engine.pair_tree import (
    PairTreeCache,
    score_rows_by_tree,
    uses_pair_tree,
)
from circuit_census.circuits.engine.pairs import PairTermsCache, score_pairs
from circuit_census.circuits.engine.plan import Halves, Outer
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.engine.structures import MSE, Block


@dataclass
class Totals:
    """What a pass found: candidates, valid circuits, and those held in memory."""

    candidates: int = 0
    valid: int = 0
    chunks: list = field(default_factory=list)
    held: int = 0
    overflow: bool = False
    bounded: int = 0  # candidates decided by bounds on a whole family at once
    compile_seconds: float = 0.0  # spent compiling kernels (a first run, empty cache)

    def hold(self, bits: np.ndarray, limit_held: int | None) -> None:
        """Keep ``bits`` in memory, or give up holding once more than ``limit_held``."""
        if self.overflow:
            return
        if limit_held is not None and self.held + len(bits) > limit_held:
            self.overflow = True
            self.chunks = []
        else:
            self.chunks.append(bits)
            self.held += len(bits)


@dataclass
class Keep:
    """What becomes of valid circuits: held in memory (``collect``, up to ``limit_held``;
    ``None``: all) and passed to ``sink`` (a circuits file's writer)."""

    collect: bool
    limit_held: int | None = None
    sink: Callable[[np.ndarray], None] | None = None

    @property
    def lists(self) -> bool:
        """Whether valid circuits are listed at all (not only counted)."""
        return self.collect or self.sink is not None


@dataclass
class PrefixWork:
    """What the blocks of one prefix share."""

    halves: Halves
    bounds: Bounds
    terms: PairTermsCache
    tree: PairTreeCache


class ShardPass:
    """One process's pass over the work units of a shard (or of the whole census)."""

    def __init__(self, problem: Problem, keep: Keep):
        self.problem, self.keep = problem, keep
        self.totals = Totals()

    def run(self, shard: tuple[int, int] | None, progress: Callable[[int], None] | None) -> Totals:
        """Score every work unit of ``shard``; ``progress(n)`` after each with its
        number of candidates."""
        self._work: PrefixWork | None = None
        for unit in work_units(self.problem, shard, self.keep.lists):
            if isinstance(unit, Decided):
                done = self.settle_family(unit)
            elif isinstance(unit, Base):
                done = self.settle_base(unit)
            else:
                done = self.score_unit(unit)
            if progress is not None:
                progress(done)
        if self.keep.collect and self.keep.limit_held == 0 and self.totals.valid:
            self.totals.overflow = True  # more valid circuits than the none it may hold
        return self.totals

    def score_unit(self, unit: WorkUnit) -> int:
        """Score one work unit (preparing its prefix's bounds and terms on its first)."""
        work = self._work
        if work is None or work.halves is not unit.halves:
            work = PrefixWork(
                unit.halves,
                make_bounds(self.problem, unit.halves),
                PairTermsCache(self.problem, unit.halves),
                PairTreeCache(self.problem, unit.halves),
            )
            self._work = work
            if self.problem.scorer is not None:
                self.problem.scorer.forget()
        return self.score_block(work, unit.outer, unit.a0, unit.a1)

    def settle_base(self, base: Base) -> int:
        """Count a base's circuits with the compiled kernels (when it fits them, and none
        of its circuits need listing: none wanted, or none valid), else split it in
        Python and score its prefixes here."""
        counts = census_last_layers(self.problem, base.family)
        if counts is not None and (counts.valid == 0 or not self.wants_pairs()):
            self.totals.candidates += counts.candidates
            self.totals.valid += counts.valid
            self.totals.bounded += counts.bounded
            return counts.candidates
        done = 0
        for item in split_base(self.problem, base):
            if isinstance(item, Decided):
                done += self.settle_family(item)
            else:
                for unit in prefix_units(self.problem, item, self.keep.lists):
                    done += self.score_unit(unit)
        return done

    def settle_family(self, decided: Decided) -> int:
        """Count a family of prefixes decided by bounds; a valid one whose circuits must
        be listed is scored prefix by prefix instead (its blocks then decide fast)."""
        if decided.verdict == 1 and self.wants_pairs():
            done = 0
            for prefix in members(self.problem, decided.family):
                for unit in prefix_units(self.problem, prefix, self.keep.lists):
                    done += self.score_unit(unit)
            return done
        self.totals.candidates += decided.count
        self.totals.bounded += decided.count
        if decided.verdict == 1:
            self.totals.valid += decided.count
        return decided.count

    def wants_pairs(self) -> bool:
        """Whether valid pairs must be listed (streamed, or held while holding; holding
        none at all lists nothing)."""
        holding = self.keep.collect and self.keep.limit_held != 0 and not self.totals.overflow
        return self.keep.sink is not None or holding

    def score_block(self, work: PrefixWork, outer: Outer, a0: int, a1: int) -> int:
        """Count the candidates among rows ``a0 <= a < a1`` of half A (with all of half B),
        and count and keep the valid ones. Branch and bound over half A first gives a
        verdict to whole rows, settled by counting alone; the other rows are scored (in
        chunks of bounded size), skipping the pairs already decided."""
        row_counts = work.bounds.row_candidates(work.halves, outer, a0, a1)
        n_cand = int(row_counts.sum())
        base = (outer.contrib + self.problem.network.biases[-1]).reshape(-1)
        by_tree = uses_pair_tree(self.problem)
        if by_tree:
            verdicts = work.tree.row_verdicts(outer, a0, a1)
        else:
            verdicts = row_verdicts(self.problem, work.bounds, base, a0, a1)
        want = self.wants_pairs()
        # pair matrices are held only when listing or bounding pairs by intervals
        step = work.halves.chunk_rows if want or not by_tree else max(a1 - a0, 1)
        for c0 in range(0, a1 - a0, step):
            c1 = min(c0 + step, a1 - a0)
            chunk = verdicts[c0:c1]
            self._settle_decided_rows(work, outer, a0, c0, chunk, row_counts[c0:c1], want)
            if not chunk.all():
                self._score_open_rows(work, outer, a0 + c0, chunk, base, want)
        self.totals.candidates += n_cand
        return n_cand

    def _settle_decided_rows(
        self,
        work: PrefixWork,
        outer: Outer,
        a0: int,
        c0: int,
        chunk: np.ndarray,
        counts: np.ndarray,
        want: bool,
    ) -> None:
        """Count the candidates of the rows ``a0 + c0 + r`` that bounds decided
        (``chunk[r]`` -1 or 1; ``counts[r]`` candidates each) and keep those of the valid
        ones."""
        start = a0 + c0
        for verdict in (-1, 1):
            n_decided = int(counts[chunk == verdict].sum())
            if n_decided == 0:
                continue
            self.totals.bounded += n_decided
            if verdict == 1:
                self.totals.valid += n_decided
                if want and n_decided:
                    valid_mask = _admissible(work.halves, outer, slice(start, start + len(chunk)))
                    valid_mask[chunk != 1] = False
                    self._keep(work.halves, start, valid_mask, outer.bits)

    def _score_open_rows(
        self,
        work: PrefixWork,
        outer: Outer,
        a0: int,
        verdicts: np.ndarray,
        base: np.ndarray,
        want: bool,
    ) -> None:
        """Score the pairs of the rows ``a0 <= a < a0 + len(verdicts)`` of half A that have
        no verdict yet. Where a pair costs more than a bound (any output activation but
        identity, or accuracy), each such row's pairs are first decided by branch and
        bound over half B as far as it goes."""
        problem, n_b = self.problem, len(work.halves.half_b)
        a1 = a0 + len(verdicts)
        identity_mse = (
            problem.criterion_code == MSE and problem.network.output_activation == "identity"
        )
        bound_pairs = problem.prune and problem.scorer is None and not identity_mse
        pair_state = np.zeros((a1 - a0, n_b) if bound_pairs else (1, 1), dtype=np.int8)
        out_valid = np.zeros((a1 - a0, n_b) if want else (1, 1), dtype=np.uint8)
        block = Block(a0, a1, verdicts, pair_state, bound_pairs, want, out_valid)
        if uses_pair_tree(problem):
            n_valid, n_bounded, valid_mask = score_rows_by_tree(
                problem, work.halves, outer, work.tree, block
            )
            self.totals.valid += n_valid
            self.totals.bounded += n_bounded
            if want and n_valid:
                self._keep(work.halves, a0, valid_mask, outer.bits)
            return
        decided = self._pairs_by_bounds(work, outer, base, block) if bound_pairs else None
        if decided is None:
            decided = score_pairs(problem, work.halves, outer, work.terms, block)
        n_valid, valid_mask = decided
        self.totals.valid += n_valid
        if want and n_valid:
            self._keep(work.halves, a0, valid_mask, outer.bits)

    def _pairs_by_bounds(
        self, work: PrefixWork, outer: Outer, base: np.ndarray, block: Block
    ) -> tuple[int, np.ndarray] | None:
        """Branch and bound over half B for each open row of ``block`` (writing its
        ``pair_state``): the number of valid pairs and their mask when that decides every
        candidate pair, else ``None``."""
        halves, a0, a1 = work.halves, block.a0, block.a1
        rows = halves.half_a.contrib[a0:a1].reshape(a1 - a0, -1)
        pair_verdicts(self.problem, work.bounds, base, rows, block)
        open_rows = np.flatnonzero(block.row_verdict == 0)
        admissible = _admissible(halves, outer, a0 + open_rows)
        states = block.pair_state[open_rows]
        n_decided = int(np.count_nonzero(admissible & (states != 0)))
        self.totals.bounded += n_decided
        if n_decided != np.count_nonzero(admissible):
            return None
        valid_mask = np.zeros((a1 - a0, len(halves.half_b)), dtype=bool)
        valid_mask[open_rows] = admissible & (states == 1)
        return int(np.count_nonzero(valid_mask)), valid_mask

    def _keep(self, halves: Halves, a0: int, valid_mask: np.ndarray, base_bits: np.ndarray) -> None:
        """Turn a block's valid pairs into circuit bitsets: stream them, and hold them."""
        rows, cols = np.nonzero(valid_mask)
        bits = halves.half_a.bits[a0 + rows] | halves.half_b.bits[cols] | base_bits
        if self.keep.sink is not None:
            self.keep.sink(bits)
        if self.keep.collect:
            self.totals.hold(bits, self.keep.limit_held)


def _admissible(halves: Halves, outer: Outer, rows: np.ndarray | slice) -> np.ndarray:
    """Which pairs of the given rows of half A with half B are candidates."""
    half_b = halves.half_b
    covered = (outer.cover_a[rows, None] | half_b.cover[None, :]) == halves.required
    return covered & ((outer.present_a[rows, None] + half_b.present[None, :]) != halves.excluded)
