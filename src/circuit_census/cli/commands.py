"""Imports every command module so that each registers its commands on the app."""

from circuit_census.cli import (
    census_cmd,  # noqa: F401
    report_cmd,  # noqa: F401
    study_cmd,  # noqa: F401
    tasks_cmd,  # noqa: F401
    train_cmd,  # noqa: F401
)
