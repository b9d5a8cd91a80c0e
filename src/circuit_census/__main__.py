"""``python -m circuit_census``: the command line."""

from circuit_census.cli import main

main()
