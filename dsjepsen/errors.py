"""Error types that carry the process exit code Jepsen users expect.

The CLI turns any DsjError into one line on stderr and its exit code, so every layer raises
these instead of printing and exiting itself.
"""

from __future__ import annotations

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNKNOWN = 2
EXIT_BAD_CONFIG = 254
EXIT_HARNESS = 255


class DsjError(Exception):
    """Base for errors a user should see as one line, with a defined exit code."""

    exit_code = EXIT_HARNESS


class ConfigError(DsjError):
    """Bad arguments, options or configuration (exit 254)."""

    exit_code = EXIT_BAD_CONFIG


class InputError(DsjError):
    """Unreadable or malformed input file; names the file and line (exit 254)."""

    exit_code = EXIT_BAD_CONFIG

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class HarnessError(DsjError):
    """Something in the harness or its environment failed (exit 255)."""

    exit_code = EXIT_HARNESS
