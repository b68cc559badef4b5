"""The `dsjepsen` console script: parses arguments and dispatches to dsjepsen.commands.

Every error a user can cause surfaces here as one line and a Jepsen exit code: 254 for bad
arguments or input, 255 for harness errors; a full traceback only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from dsjepsen import __version__
from dsjepsen.errors import EXIT_BAD_CONFIG, EXIT_HARNESS, DsjError

#: subcommand modules in dsjepsen.commands, in the order `--help` lists them
COMMANDS = (
    "test",
    "maelstrom",
    "campaign",
    "check",
    "export",
    "report",
    "serve",
    "cluster",
    "docker",
    "doctor",
    "list",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage, which Jepsen reserves for 'unknown'; we exit 254."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_BAD_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dsjepsen",
        description="Jepsen-style correctness testing for distributed systems.",
    )
    parser.add_argument("--version", action="version", version=f"dsjepsen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"dsjepsen.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as e:
            if e.name == f"dsjepsen.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # a command that takes positional words anywhere among its options (Maelstrom's
        # `test`: the node program's arguments) gets them, and names an unknown option
        # itself; every other command refuses them as argparse does
        if not getattr(args, "takes_extra", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = extra
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        return int(args.func(args) or 0)
    except DsjError as e:
        if args.debug:
            traceback.print_exc()
        print(f"dsjepsen: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("dsjepsen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last resort: one line, exit 255
        if args.debug:
            traceback.print_exc()
        print(
            f"dsjepsen: internal error: {type(e).__name__}: {e} (rerun with --debug)",
            file=sys.stderr,
        )
        return EXIT_HARNESS


if __name__ == "__main__":
    sys.exit(main())
