"""`dsjepsen maelstrom test` takes Maelstrom's command lines: every option of Maelstrom's `test`
(its own and the Jepsen CLI options it inherits) is accepted with Maelstrom's meaning, or refused
with one line saying why, before any node is touched; words that are not options are the node
program's arguments; node ids follow Maelstrom's rules. No cluster here: the refusals happen
before one is opened, and the translations are pure."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dsjepsen.cli import build_parser, main
from dsjepsen.cluster import localnet
from dsjepsen.commands.maelstrom import MAELSTROM_OPTIONS, node_args, node_ids, translate
from dsjepsen.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "maelstrom.md"

#: the evaluation command lines of Gossip Glomers 1-5 as published (fly.io/dist-sys), with
#: `./maelstrom` replaced by `dsjepsen maelstrom`
GLOMERS = {
    "1": "test -w echo --bin ~/go/bin/maelstrom-echo --node-count 1 --time-limit 10",
    "2": "test -w unique-ids --bin ~/go/bin/maelstrom-unique-ids --time-limit 30 --rate 1000 "
    "--node-count 3 --availability total --nemesis partition",
    "3a": "test -w broadcast --bin ~/go/bin/maelstrom-broadcast --node-count 1 --time-limit 20 "
    "--rate 10",
    "3b": "test -w broadcast --bin ~/go/bin/maelstrom-broadcast --node-count 5 --time-limit 20 "
    "--rate 10",
    "3c": "test -w broadcast --bin ~/go/bin/maelstrom-broadcast --node-count 5 --time-limit 20 "
    "--rate 10 --nemesis partition",
    "3d": "test -w broadcast --bin ~/go/bin/maelstrom-broadcast --node-count 25 --time-limit 20 "
    "--rate 100 --latency 100",
    "3e": "test -w broadcast --bin ~/go/bin/maelstrom-broadcast --node-count 25 --time-limit 20 "
    "--rate 100 --latency 100",
    "4": "test -w g-counter --bin ~/go/bin/maelstrom-counter --node-count 3 --rate 100 "
    "--time-limit 20 --nemesis partition",
    "5a": "test -w kafka --bin ~/go/bin/maelstrom-kafka --node-count 1 --concurrency 2n "
    "--time-limit 20 --rate 1000",
    "5b": "test -w kafka --bin ~/go/bin/maelstrom-kafka --node-count 2 --concurrency 2n "
    "--time-limit 20 --rate 1000",
    "6a": "test -w txn-rw-register --bin ~/go/bin/maelstrom-txn --node-count 1 --time-limit 20 "
    "--rate 1000 --concurrency 2n --consistency-models read-uncommitted --availability total",
    "6b": "test -w txn-rw-register --bin ~/go/bin/maelstrom-txn --node-count 2 --concurrency 2n "
    "--time-limit 20 --rate 1000 --consistency-models read-uncommitted --availability total "
    "--nemesis partition",
    # as published: an en dash starts `–-nemesis`, so Maelstrom takes it and `partition` for
    # the node's arguments and runs without a nemesis; so does dsjepsen
    "6c": "test -w txn-rw-register --bin ~/go/bin/maelstrom-txn --node-count 2 --concurrency 2n "
    "--time-limit 20 --rate 1000 --consistency-models read-committed --availability total "
    "\u2013-nemesis partition",
}


def parse(line: str):
    """The parsed `dsjepsen maelstrom <line>`, with the leftover words as cli.main keeps them."""
    args, extra = build_parser().parse_known_args(["maelstrom", *shlex.split(line)])
    args.extra = extra
    return args


def opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("challenge", sorted(GLOMERS))
def test_gossip_glomers_command_lines_translate_unchanged(challenge: str) -> None:
    args = parse(GLOMERS[challenge])
    argv = translate(args)
    line = shlex.split(GLOMERS[challenge])
    dsj = {"txn-rw-register": "rw-register"}
    assert opt(argv, "--workload") == dsj.get(opt(line, "-w"), opt(line, "-w"))
    n = int(opt(line, "--node-count"))
    assert opt(argv, "--node-ids") == ",".join(f"n{i}" for i in range(n))
    assert float(opt(argv, "--time-limit")) == float(opt(line, "--time-limit"))
    if "--rate" in line:
        assert float(opt(argv, "--rate")) == float(opt(line, "--rate"))
    if "--latency" in line:
        assert opt(argv, "--latency") == "100"
        assert opt(argv, "--latency-dist") == "constant"  # Maelstrom's default
    if "--nemesis" in line:
        assert opt(argv, "--nemesis") == "partition-majority"
    else:
        assert "--nemesis" not in argv
    if "--concurrency" in line:
        assert opt(argv, "--concurrency") == "2n"
    if "--consistency-models" in line:
        assert opt(argv, "--consistency") == opt(line, "--consistency-models")
        assert opt(argv, "--max-txn-length") == "4"  # Maelstrom's defaults
        assert opt(argv, "--max-writes-per-key") == "16"
        assert opt(argv, "--key-count") == "10"
        assert "--wfr-keys" in argv  # Maelstrom's txn-rw-register infers versions so


def test_6c_en_dash_words_go_to_the_node_as_in_maelstrom() -> None:
    argv = translate(parse(GLOMERS["6c"]))
    assert opt(argv, "--bin").endswith("maelstrom-txn '\u2013-nemesis' partition")


def test_txn_options_translate_with_maelstrom_meanings() -> None:
    line = (
        "test -w txn-list-append --bin ./n --consistency-models 'serializable , read-committed' "
        "--max-txn-length 2 --key-count 3 --max-writes-per-key 5"
    )
    argv = translate(parse(line))
    assert opt(argv, "--workload") == "list-append"
    assert opt(argv, "--consistency") == "serializable,read-committed"
    assert (opt(argv, "--max-txn-length"), opt(argv, "--key-count")) == ("2", "3")
    assert opt(argv, "--max-writes-per-key") == "5"
    assert "--wfr-keys" not in argv  # Maelstrom's txn-list-append takes Elle's defaults
    # Maelstrom's default model for its txn workloads
    argv = translate(parse("test -w txn-rw-register --bin ./n"))
    assert opt(argv, "--consistency") == "strict-serializable"
    # the txn options mean nothing to other workloads, as in Maelstrom
    argv = translate(parse("test -w lin-kv --bin ./n --consistency-models read-committed"))
    assert "--consistency" not in argv and "--max-txn-length" not in argv


def test_every_maelstrom_option_is_accepted_with_its_value() -> None:
    """Each option of Maelstrom's `test`, given as a README would, parses and translates (no
    `unrecognized arguments`, no top-level usage)."""
    values = {
        "--bin": "./node", "-w": "echo", "--availability": "0.9",
        "--consistency-models": "read-uncommitted", "--key-count": "4", "--latency": "5",
        "--latency-dist": "uniform", "--max-txn-length": "4", "--max-writes-per-key": "8",
        "--node-count": "3", "--nemesis": "partition", "--nemesis-interval": "5",
        "--rate": "10", "--topology": "tree4", "-n": "n1", "--nodes": "n1,n2",
        "--nodes-file": None, "--username": "admin", "--password": "secret",
        "--ssh-private-key": "~/.ssh/id", "--concurrency": "2n", "--test-count": "2",
        "--time-limit": "10",
    }  # fmt: skip
    for flags, metavar, _, _ in MAELSTROM_OPTIONS:
        flag = flags.split()[0]
        if flag == "--nodes-file":
            continue  # reads a file: its own test below
        word = [flag] if metavar is None else [flag, values[flag]]
        base = ["test", "--bin", "./node", "-w", "echo"]
        args = parse(shlex.join([*base, *word]))
        assert node_args(args) == [], flag
        translate(args)


def test_node_ids_follow_maelstrom(tmp_path: Path) -> None:
    assert node_ids(parse("test --bin x")) == ["n1", "n2", "n3", "n4", "n5"]  # Jepsen's
    assert node_ids(parse("test --bin x --nodes n1,n2,n3")) == ["n1", "n2", "n3"]
    assert node_ids(parse("test --bin x --nodes 1")) == ["1"]
    assert node_ids(parse("test --bin x -n a -n b")) == ["a", "b"]
    assert node_ids(parse("test --bin x --nodes n1 --node-count 2")) == ["n0", "n1"]
    f = tmp_path / "nodes"
    f.write_text("n7\nn8\n\n")
    assert node_ids(parse(f"test --bin x --nodes-file {f} --nodes n9")) == ["n7", "n8", "n9"]


def test_words_that_are_not_options_are_the_node_programs_arguments() -> None:
    args = parse("test -w echo --bin ./node.sh --config a.json --time-limit 5 verbose")
    # --config is no Maelstrom option: refused, one line, naming it
    with pytest.raises(ConfigError, match=r"^--config: not an option of Maelstrom's test"):
        translate(args)
    args = parse("test -w echo --bin ./node.sh first --time-limit 5 second")
    assert node_args(args) == ["first", "second"]
    assert opt(translate(args), "--bin") == "./node.sh first second"


REFUSED = [
    (
        "-w txn-rw-register --consistency-models read-comitted",
        "--consistency-models: 'read-comitted' is not one of Elle's transactional models "
        "(did you mean read-committed?",
    ),
    ("-w txn-list-append --consistency-models ,", "--consistency-models: no model named"),
    ("-w txn-list-append --max-txn-length 0", "--max-txn-length: must be at least 1"),
    ("-w datomic", "-w: unknown Maelstrom workload 'datomic'"),
    ("-w echo --nemesis clock", "--nemesis: unknown Maelstrom nemesis 'clock'"),
    ("-w echo --rate 0", "--rate 0: Maelstrom then sends no client requests"),
    ("-w echo --rate fast", "--rate: expected a number, got 'fast'"),
    ("-w echo --test-count 0", "--test-count: must be at least 1"),
    ("-w echo --node-count 0", "--node-count: must be at least 1"),
    ("-w echo --availability most", "--availability: expected total or a fraction"),
    ("-w echo --nodes n1,c2", "--nodes: 'c2' cannot be a node id"),
    ("-w echo --nodes n1,n1", "--nodes: node id 'n1' is given twice"),
    ("-w echo --nodes-file /nonexistent/nodes", "--nodes-file /nonexistent/nodes: cannot read"),
    ("-w echo --frobnicate 3", "--frobnicate: not an option of Maelstrom's test command"),
    (
        "-w echo --node-cont 3",
        "--node-cont: not an option of Maelstrom's test command (did you mean --node-count?",
    ),
    ("-w echo --bin /nonexistent/node", "--bin /nonexistent/node: no such file"),
]


@pytest.mark.parametrize(("words", "says"), REFUSED)
def test_refusals_are_one_line_exit_254_before_any_node(capsys, words: str, says: str) -> None:
    line = ["maelstrom", "test", *shlex.split(words), "--cluster-name", "zz"]
    if "--bin" not in words:
        line += ["--bin", "/bin/true"]
    assert main(line) == 254
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dsjepsen: error: {err[0].removeprefix('dsjepsen: error: ')}"], err
    assert says in err[0], err


def test_bin_is_required_and_workload_defaults_to_lin_kv(capsys) -> None:
    assert main(["maelstrom", "test", "--cluster-name", "zz"]) == 254
    assert capsys.readouterr().err.strip() == (
        "dsjepsen: error: --bin: expected --bin PATH, the node program to test"
    )
    assert opt(translate(parse("test --bin ./n")), "--workload") == "lin-kv"


def test_docs_table_lists_every_maelstrom_option() -> None:
    """docs/maelstrom.md's table of Maelstrom's options names exactly the options the
    command declares, each with what dsjepsen does with it."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Every option of Maelstrom's `test`", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| `-")]
    documented = {re.findall(r"`(-[-\w]+)", r.strip("|").split("|")[0])[-1] for r in rows}
    declared = {flags.split()[-1] for flags, _, _, _ in MAELSTROM_OPTIONS}
    assert documented == declared
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert cells[2] in ("honoured", "no effect", "refused", "honoured, partly"), r


def test_capacity_estimate_is_per_target() -> None:
    """A Maelstrom node with its relay costs less than a raft-kv node: 25 fit on 2 cores."""
    from dsjepsen.targets.maelstrom.target import MaelstromTarget
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    two_cores = (2, 24 * localnet.GIB)
    assert localnet.max_node_count(*two_cores, RaftKvTarget.node_cost) == 16
    assert localnet.max_node_count(*two_cores, MaelstromTarget.node_cost) >= 25
