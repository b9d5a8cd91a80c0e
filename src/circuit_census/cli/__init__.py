"""The ``circuit-census`` command line; :func:`main` is its entry point.

``app`` composes the commands of ``census_cmd``, ``train_cmd``, ``tasks_cmd``,
``report_cmd`` and ``study_cmd``; ``progress`` holds every progress bar.
"""

from circuit_census.cli.app import main

__all__ = ["main"]
