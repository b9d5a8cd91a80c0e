"""Fixtures shared by the command-line tests."""

from __future__ import annotations

import pytest

from circuit_census.cli import main


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli(argv)`` returns (exit code, stdout, stderr)."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
