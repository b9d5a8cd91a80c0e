"""Imports every command module so that each registers its commands on the app."""

from circuit_census.cli import census_cmd  # noqa: F401
