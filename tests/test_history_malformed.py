"""Bad input never becomes a verdict: a corpus of malformed, hostile and odd histories, each run
through the real `dsjepsen check` in a child process with a time and memory bound, with the exit
code and a fragment of the one-line message it must give."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

#: every case must finish within this (a FIFO that blocked, or /dev/zero read whole, would not)
SECONDS = 30
#: and within this much address space
MEMORY = 1536 << 20


def check(*args: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", "check", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=SECONDS,
        preexec_fn=limit,  # noqa: PLW1509 - only sets a resource limit
    )


def jl(
    process: object = 0, type: str = "invoke", f: str = "write", value: object = 1, **kw: object
) -> str:
    return json.dumps({"process": process, "type": type, "f": f, "value": value, **kw})


WRITE_1 = [jl(), jl(type="ok")]
READ = [jl(1, f="read", value=None), jl(1, "ok", "read", 1)]
GOOD = "\n".join(WRITE_1 + READ) + "\n"


def text(body: str, name: str = "h.jsonl") -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_text(body)
        return p

    return make


def raw(body: bytes, name: str = "h.jsonl") -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(body)
        return p

    return make


def fifo(d: Path) -> Path:
    p = d / "pipe.jsonl"
    os.mkfifo(p)  # nobody ever writes: opening it for reading would block forever
    return p


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    code: int
    fragment: str  # in stderr (errors, warnings) or stdout (verdicts)
    line: int | None = None  # the error names FILE:LINE
    args: tuple[str, ...] = ()


EDN_OPS = (
    "{:process 0, :type :invoke, :f :write, :value 1}\n"
    "{:process 0, :type :ok, :f :write, :value 1}\n"
)
DEEP_JSON = jl(value="[" * 101 + "]" * 101).replace('"[', "[").replace(']"', "]")

CASES: dict[str, Case] = {
    # truncation and garbage
    "only line is garbage": Case(text('{"garbage'), 254, "invalid JSON", 1),
    "garbage mid-file": Case(
        text(GOOD.replace(READ[0], '{"process": 1, "ty')), 254, "invalid JSON", 3
    ),
    "garbage last line with newline": Case(text(GOOD + "{not json\n"), 254, "invalid JSON", 5),
    "truncated last line is dropped": Case(
        text(GOOD + jl(2, f="read")[:20]), 0, "dropped a truncated last line", 5
    ),
    "not an object": Case(text(GOOD + "[1, 2]\n"), 254, "must be a JSON object", 5),
    "not UTF-8": Case(raw(GOOD.encode() + b'{"process": "\xff"}\n'), 254, "not UTF-8 text"),
    # nothing to check
    "empty file": Case(text(""), 254, "history is empty"),
    "blank lines": Case(text("\n\n  \n"), 254, "history is empty"),
    "empty, format forced": Case(
        text(""), 254, "history is empty (no ops)", None, ("--format", "jsonl")
    ),
    # well formed but vacuous (Knossos's mongodb-v0-ack-rollback-.edn): unknown, not bad input
    "nemesis only": Case(
        text(jl("nemesis", f="start-kill") + "\n" + jl("nemesis", "info", "start-kill") + "\n"),
        2,
        "no client operations to check (only 2 nemesis ops): the history is vacuous",
    ),
    # values typed as JSON types them
    "true after 1": Case(
        text("\n".join(WRITE_1 + [jl(1, f="read", value=None), jl(1, "ok", "read", True)])),
        1,
        "read returned true, but the register could only hold 1",
    ),
    "1 after true (EDN)": Case(
        text(
            EDN_OPS.replace("1}", "true}") + "{:process 1, :type :invoke, :f :read, :value nil}\n"
            "{:process 1, :type :ok, :f :read, :value 1}\n",
            "h.edn",
        ),
        1,
        "read returned 1, but the register could only hold true",
    ),
    "NaN": Case(
        text(GOOD + '{"process": 2, "type": "invoke", "f": "write", "value": NaN}\n'), 254, "NaN", 5
    ),
    "Infinity": Case(text(GOOD.replace("1}", "-Infinity}", 1)), 254, "Infinity", 1),
    "overflowing float": Case(text(GOOD.replace("1}", "1e999}", 1)), 254, "not finite", 1),
    "EDN ##NaN": Case(
        text(EDN_OPS.replace("1}", "##NaN}", 1), "h.edn"), 254, "##NaN is not a finite number", 1
    ),
    "EDN ##Inf in a vector": Case(
        text("[" + EDN_OPS.replace("1}", "[1 ##Inf]}", 1) + "]", "h.edn"), 254, "##Inf", 1
    ),
    "EDN ratio by zero": Case(
        text(EDN_OPS.replace("1}", "1/0}", 1), "h.edn"), 254, "divides by zero", 1
    ),
    # not a regular file
    "FIFO": Case(fifo, 254, "a FIFO, not a regular file"),
    "/dev/zero": Case(lambda d: Path("/dev/zero"), 254, "a character device, not a regular file"),
    "directory": Case(lambda d: d, 254, "a directory, not a regular file"),
    "missing": Case(lambda d: d / "missing.jsonl", 254, "cannot read history: No such file"),
    # sizes and depths
    "line over 16 MiB": Case(
        text(GOOD + jl(2, value="x" * (17 << 20)) + "\n"), 254, "longer than the limit", 5
    ),
    "line over 16 MiB (EDN)": Case(
        text(EDN_OPS + '{:value "' + "x" * (17 << 20) + '"}\n', "h.edn"), 254, "longer than", 3
    ),
    "JSON nested 101 deep": Case(
        text(GOOD + DEEP_JSON + "\n"), 254, "nesting deeper than 100 levels", 5
    ),
    "JSON nested a million deep": Case(
        text(GOOD + jl(2, value=0).replace("0}", "[" * 1_000_000 + "]" * 1_000_000 + "}") + "\n"),
        254,
        "nesting deeper than 100 levels",
        5,
    ),
    "JSON brackets in strings are not nesting": Case(
        text(
            GOOD
            + jl(2, "invoke", "write", "[" * 500)
            + "\n"
            + jl(2, "ok", "write", "[" * 500)
            + "\n"
        ),
        0,
        "VALID",
    ),
    "EDN nested a million deep": Case(
        text(EDN_OPS.replace("1}", "[" * 1_000_000 + "]" * 1_000_000 + "}", 1), "h.edn"),
        254,
        "nesting deeper than 100 levels",
        1,
    ),
    "5000-digit integer": Case(
        text(GOOD.replace("1}", "7" * 5000 + "}", 1)), 254, "integer with more than 4300 digits", 1
    ),
    "5000-digit integer (EDN)": Case(
        text(EDN_OPS.replace("1}", "7" * 5000 + "}", 1), "h.edn"), 254, "more than 4300 digits", 1
    ),
    "5000-digit integer (kv lines)": Case(
        text(
            '{:process 0, :type :invoke, :f :get, :key "1", :value ' + "7" * 5000 + "}\n", "h.txt"
        ),
        254,
        "more than 4300 digits",
        1,
        ("--format", "kv-log"),
    ),
    "5000-digit value (Jepsen log)": Case(
        text("INFO  jepsen.util - 0\t:invoke\t:write\t" + "7" * 5000 + "\n", "h.log"),
        254,
        "more than 4300 digits",
        1,
    ),
    # regular expressions fed long lines must stay linear
    "Jepsen log line of blanks": Case(
        text("INFO  jepsen.util - 0\t:invoke\t:read\tnil" + " \t" * (4 << 20) + "x\n", "h.log"),
        0,
        "VALID",
    ),
    "kv line with long runs of blanks and commas": Case(
        text('{:process 0, :type :invoke, :f :get, :key "1"' + " ," * (4 << 20) + "\n", "h.txt"),
        254,
        "invalid EDN",
        1,
    ),
    # Jepsen's process rules: still errors, with the line
    "completion without invocation": Case(
        text(EDN_OPS + "{:process 3, :type :ok, :f :read, :value 1}\n", "h.edn"),
        254,
        "has no open invocation",
        3,
    ),
    "unknown type": Case(text(GOOD + jl(2, "crashed") + "\n"), 254, "unknown op type 'crashed'", 5),
    "op the model does not know": Case(
        text(GOOD), 254, "model queue has no operation 'write'", 1, ("--model", "queue")
    ),
    # found by the adversarial probe (issue 22) and searched for around it
    "NUL byte mid-file": Case(
        raw(GOOD.encode() + b"\x00" + jl(2).encode() + b"\n"), 254, "a NUL byte at byte", None
    ),
    "sparse file": Case(raw(b"\x00" * (4 << 20)), 254, "a NUL byte at byte 0, line 1"),
    "last line cut inside a UTF-8 character": Case(
        raw(GOOD.encode() + jl(2, value="é").encode()[:-3]), 0, "dropped a truncated last line"
    ),
    "bad UTF-8 mid-file is still refused": Case(
        raw(GOOD.encode() + b'{"p": "\xc3"}\n' + jl(2).encode() + b"\n"), 254, "not UTF-8 text"
    ),
    "EDN map with a key twice": Case(
        text("{:process 0, :type :invoke, :f :write, :value 1, :value 2}\n", "h.edn"),
        254,
        "map literal has the key :value twice",
        1,
    ),
    "EDN set with an element twice": Case(
        text("{:process 0, :type :invoke, :f :add, :value #{1 2 1}}\n", "h.edn"),
        254,
        "set literal has the element 1 twice",
        1,
    ),
    'EDN :f and "f" (one key once read)': Case(
        text('{:process 0, :type :invoke, :f :write, "f" 3, :value 1}\n', "h.edn"),
        254,
        "map literal has the key 'f' twice",
        1,
    ),
    "micro-op that is no triple": Case(
        text('{"process": 0, "type": "invoke", "f": "txn", "value": [["read", "x"]]}\n'),
        254,
        "a micro-op is [read|write key value]",
        1,
        ("--model", "multi-register"),
    ),
    "checker without its ops": Case(
        text(GOOD), 254, "the set-full checker judges histories of", None, ("--checker", "set-full")
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.make(tmp_path)
    started = time.monotonic()
    r = check(str(path), *case.args)
    took = time.monotonic() - started
    out = r.stdout + r.stderr
    assert r.returncode == case.code, (r.returncode, out[-2000:])
    assert case.fragment in out, out[-2000:]
    assert took < SECONDS
    if case.code == 254:
        assert r.stdout == ""
        assert r.stderr.count("\n") == 1, r.stderr  # one line
        where = f"{path}:{case.line}: " if case.line is not None else f"{path}: "
        assert r.stderr.startswith(f"dsjepsen: error: {where}"), r.stderr
    if case.code in (0, 1):
        assert "VALID" in r.stdout  # a verdict on what was read; never on nothing
    if case.line is not None and case.code != 254:
        assert f"{path}:{case.line}: " in r.stderr  # a warning names the line too


# ---------------------------------------------------------------------------------------------
# Jepsen's own histories: completions appended in arrival order


def test_jepsen_times_going_backwards_are_one_warning(tmp_path: Path) -> None:
    ops = []
    t = 1000
    for p in range(6):
        ops.append(f"{{:process {p}, :type :invoke, :f :write, :value {p}, :time {t}}}")
        t += 10
    for p in range(6):  # completions timed when sent, logged when they arrive: out of order
        ops.append(f"{{:process {p}, :type :ok, :f :write, :value {p}, :time {1000 + 10 * p + 5}}}")
    path = tmp_path / "history.edn"
    path.write_text("[" + "\n ".join(ops) + "]\n")
    r = check(str(path))
    assert r.returncode == 0, r.stderr
    assert "VALID" in r.stdout
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"dsjepsen: warning: {path}:7: time goes backwards 5 times (largest step back 45 ns); "
        "times kept as recorded, real-time order is the order of the ops in the file"
    ]


# ---------------------------------------------------------------------------------------------
# What a history says reaches the terminal as text, never as control sequences


def test_control_characters_are_escaped_in_the_explanation(tmp_path: Path) -> None:
    evil = "\x1b[2J\x1b]0;pwned\x07"
    lines = [
        jl(evil, "invoke", "write", evil, key=evil),
        jl(evil, "ok", "write", evil, key=evil),
        jl(1, "invoke", "read", None, key=evil),
        jl(1, "ok", "read", "x\x1b[31m", key=evil),
    ]
    path = tmp_path / "evil.jsonl"
    path.write_text("\n".join(lines) + "\n")
    r = check(str(path), "--checker", "linearizable", "--checker", "stats")
    assert r.returncode == 1, r.stderr
    assert "Not linearizable on key" in r.stdout
    for stream in (r.stdout, r.stderr):
        assert not any(c in stream for c in "\x1b\x07"), stream
    assert "\\x1b[2J" in r.stdout
    # the same in an error message: a process that invokes twice
    path.write_text("\n".join([jl(evil), jl(evil)]) + "\n")
    r = check(str(path))
    assert r.returncode == 254 and "\x1b" not in r.stderr and "\\x1b[2J" in r.stderr
