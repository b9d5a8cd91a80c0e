"""The one error type for bad user input.

Library code raises :class:`InputError` with a message written for a person; the CLI turns
it into one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a message for a person, never a traceback."""
