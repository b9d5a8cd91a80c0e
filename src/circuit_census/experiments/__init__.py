"""Studies: sweep files (TOML), built-in presets, the SQLite results store, and the
executors (this process, local processes, Dask) that run them.

- :func:`load_sweep` / :func:`parse_sweep`: a sweep file into a :class:`Sweep` of
  :class:`Condition` s.
- :func:`preset_sweep` / :func:`reproduction_sweep`: the built-in experiments.
- :func:`run_study`: run or resume a study into a directory (``DIR/results.sqlite``).
- :class:`Store`: read and write the results store; :class:`Row` is one of its rows.
"""

from circuit_census.experiments.presets import (
    PRESET_NAMES,
    preset_document,
    preset_sweep,
    reproduction_sweep,
)
from circuit_census.experiments.rows import Row
from circuit_census.experiments.runner import StudySummary, run_study
from circuit_census.experiments.store import Store
from circuit_census.experiments.sweeps import Condition, Sweep, load_sweep, parse_sweep

__all__ = [
    "PRESET_NAMES",
    "Condition",
    "Row",
    "Store",
    "StudySummary",
    "Sweep",
    "load_sweep",
    "parse_sweep",
    "preset_document",
    "preset_sweep",
    "reproduction_sweep",
    "run_study",
]
