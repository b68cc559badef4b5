"""The node program: `--bin` as Maelstrom reads it, checked before any node is touched.

Maelstrom's `--bin` is a path to one executable, resolved against the directory Maelstrom runs
in (`--bin echo.rb` is `./echo.rb`), with the node's arguments given after the options. dsjepsen
also takes a command line there (`--bin 'python3 node.py'`, split like a shell line, never run
by a shell), so:

- a `--bin` that names an existing file is that file, spaces and all;
- otherwise it is split like a shell line, and its first word is a file in the current
  directory when one of that name exists (Maelstrom's rule), else a program on PATH.

On nodes that share this machine's files (the local cluster) the program is checked here: a
missing file, a directory, a file without the execute bit, or a script whose `#!` interpreter
is missing is one line naming `--bin` and what is wrong (exit 254), instead of a node that
dies at start with "No such file or directory" about the script rather than the interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil

from dsjepsen.errors import ConfigError


def split_bin(bin: str) -> list[str]:
    """The argv `--bin` means (see the module docstring); ConfigError when it cannot split."""
    text = str(bin)
    if text.strip() and os.path.exists(os.path.expanduser(text)):
        return [text]
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise ConfigError(f"--bin: cannot split {text!r}: {e}") from None
    if not argv:
        raise ConfigError("--bin: the maelstrom target needs the node program (--bin 'CMD')")
    return argv


def bin_line(bin: str, args: list[str]) -> str:
    """`--bin` plus the node arguments Maelstrom takes after the options, as one `--bin`
    value that `split_bin` turns back into [program, *args]."""
    if not args:
        return bin
    if os.path.exists(os.path.expanduser(bin)):
        return shlex.join([bin, *args])
    return f"{bin} {shlex.join(args)}"


def resolve(argv: list[str], cwd: str | None = None) -> list[str]:
    """argv with its program made absolute (a file here, as Maelstrom resolves it) or left to
    PATH, after checking that it can start. ConfigError names --bin and the problem."""
    cwd = cwd or os.getcwd()
    prog = os.path.expanduser(argv[0])
    if "/" not in prog and not os.path.exists(os.path.join(cwd, prog)):
        if shutil.which(prog) is None:
            raise ConfigError(
                f"--bin {argv[0]}: no file {prog} in {cwd} and no program {prog} on PATH"
            )
        return [prog, *argv[1:]]
    path = os.path.abspath(os.path.join(cwd, prog))
    if not os.path.exists(path):
        raise ConfigError(f"--bin {argv[0]}: no such file ({path})")
    if os.path.isdir(path):
        raise ConfigError(f"--bin {argv[0]}: {path} is a directory, not a program")
    if not os.access(path, os.X_OK):
        raise ConfigError(
            f"--bin {argv[0]}: {path} is not executable (chmod +x it, or name its "
            f"interpreter: --bin 'python3 {argv[0]}')"
        )
    problem = interpreter_problem(path)
    if problem:
        raise ConfigError(f"--bin {argv[0]}: {problem}")
    return [path, *argv[1:]]


def interpreter_problem(path: str) -> str | None:
    """Why the `#!` line of the script at `path` cannot start it here, or None (not a
    script, or its interpreter exists). `#!/usr/bin/env X` looks X up on PATH."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return f"its #! line names no interpreter ({first.decode('utf-8', 'replace').strip()})"
    interp, rest = words[0], words[1:]
    line = "#!" + " ".join(words)
    if not (os.path.isfile(interp) and os.access(interp, os.X_OK)):
        return f"its interpreter {interp} ({line}) does not exist on this machine"
    if os.path.basename(interp) == "env":
        names = [w for w in rest if not w.startswith("-") and "=" not in w]
        if names and shutil.which(names[0]) is None:
            return f"its interpreter {names[0]} ({line}) is not on PATH"
    return None
