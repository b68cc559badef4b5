"""The `dsjepsen` console script: parses arguments and dispatches to dsjepsen.commands.

Every error a user can cause surfaces here as one line and a Jepsen exit code: 254 for bad
arguments or input, 255 for harness errors; a full traceback only with --debug.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
import traceback
from typing import Any

from dsjepsen import __version__
from dsjepsen.errors import EXIT_BAD_CONFIG, EXIT_HARNESS, DsjError
from dsjepsen.history import printable

#: subcommand modules in dsjepsen.commands, in the order `--help` lists them
COMMANDS = (
    "test",
    "maelstrom",
    "campaign",
    "check",
    "repro",
    "shrink",
    "export",
    "report",
    "serve",
    "cluster",
    "docker",
    "doctor",
    "list",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage, which Jepsen reserves for 'unknown'; we exit 254, and
    say what is wrong in one line (with where to look) instead of a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        usage_error(self.prog, message)


def usage_error(prog: str, message: str) -> None:
    """One line on stderr for a bad command line, then exit 254."""
    sys.stderr.write(printable(f"{prog}: error: {message} (see {prog} --help)") + "\n")
    sys.exit(EXIT_BAD_CONFIG)


def _unknown_options(parser: argparse.ArgumentParser, args: Any, extra: list[str]) -> None:
    """argparse's 'unrecognized arguments', in one line, with the option meant when a typo
    is close to one ("--nemsis: did you mean --nemesis?")."""
    sub = parser
    action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if action is not None and getattr(args, "command", None) in action.choices:
        sub = action.choices[args.command]
    known = [o for o in sub._option_string_actions if o.startswith("--")]
    hints = []
    for token in extra:
        flag = token.split("=", 1)[0]
        if flag.startswith("--"):
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
    shown = " ".join(extra)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    message = f"unrecognized arguments: {shown}" + (f" ({'; '.join(hints)})" if hints else "")
    usage_error(sub.prog, message)


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
        # `test`: the node program's arguments) gets them and names an unknown option itself
        if getattr(args, "takes_extra", False):
            args.extra = extra
        else:
            _unknown_options(parser, args, extra)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        return int(args.func(args) or 0)
    except DsjError as e:
        if args.debug:
            traceback.print_exc()
        # one line: a path or value in the message may hold newlines or escape sequences
        print(f"dsjepsen: error: {printable(e)}", file=sys.stderr)
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
            printable(f"dsjepsen: internal error: {type(e).__name__}: {e} (rerun with --debug)"),
            file=sys.stderr,
        )
        return EXIT_HARNESS


if __name__ == "__main__":
    sys.exit(main())
