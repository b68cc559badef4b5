"""CLI wording: every help page ends with an example, `cluster` takes --cluster-name like
`test`, and the old `cluster up --nodes N` still works for one release, with a warning."""

from __future__ import annotations

import argparse
import re

import pytest

from dsjepsen import cli, plugins


def _pages() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser, by its command line: 'test', 'cluster up', ..."""
    pages: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    pages[" ".join((*words, name))] = sub
                    walk(sub, (*words, name))

    walk(cli.build_parser(), ())
    return pages


PAGES = _pages()


def test_every_command_has_a_help_page():
    assert set(cli.COMMANDS) <= set(PAGES)
    assert {"cluster up", "cluster exec", "docker up", "campaign run"} <= set(PAGES)


@pytest.mark.parametrize("command", sorted(PAGES))
def test_help_ends_with_an_example(command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = PAGES[command].format_help().rstrip("\n")
    last = text.splitlines()[-1]
    assert last.startswith("example"), f"dsjepsen {command} --help ends with {last!r}"
    assert f"dsjepsen {command.split()[0]}" in last


def test_cli_help_output_ends_with_example(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["cluster", "up", "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("example: ")


def test_test_help_lists_every_target(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    text = PAGES["test"].format_help()
    target = re.search(r"--target TARGET\s+system under test \(([^)]*)\)", text)
    assert target, text
    assert set(target.group(1).split(", ")) == set(plugins.available("targets"))


@pytest.mark.parametrize("action", ["up", "down", "status", "exec", "heal"])
def test_every_cluster_action_takes_cluster_name_and_the_old_name(action, capsys):
    rest = ["n1", "--", "true"] if action == "exec" else []
    parser = cli.build_parser()
    for flag in ("--cluster-name", "--name"):
        args = parser.parse_args(["cluster", action, flag, "abc", *rest])
        assert args.cluster_name == "abc"
    assert parser.parse_args(["cluster", action, *rest]).cluster_name == "default"
    assert "--cluster-name NAME" in PAGES[f"cluster {action}"].format_help()
    assert "--name" not in PAGES[f"cluster {action}"].format_help()  # the old name, hidden
    err = capsys.readouterr().err
    assert "--name is now --cluster-name" in err or action != "up"  # said once per process


@pytest.mark.parametrize(
    ("argv", "old", "new"),
    [
        (["test", "--keys", "3", "--time-limit", "nan"], "--keys", "--key-count"),
        (["test", "--msg-latency", "5", "--time-limit", "nan"], "--msg-latency", "--latency"),
        (["check", "/nonexistent", "--time-limit", "3"], "--time-limit", "--check-time-limit"),
        (["campaign", "merge", "/nonexistent", "--out", "/proc/x"], "--out", "--output"),
        (["docker", "status", "--name", "Bad Name"], "--name", "--cluster-name"),
    ],
)
def test_old_option_names_still_work_for_a_release_with_a_warning(capsys, argv, old, new):
    """One name per idea across the commands (docs/running.md); the old name is still taken,
    and says what it is now (the command then goes on, here to a one-line error)."""
    from dsjepsen import options

    options._warned.discard(old)
    code = cli.main(argv)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"dsjepsen: warning: {old} is now {new}; the old name goes in the next release"
    assert code == 254 and len(err) == 2, err


def test_cluster_up_node_count_and_the_deprecated_nodes(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["cluster", "up", "--node-count", "3"]).node_count == 3
    assert parser.parse_args(["cluster", "up"]).node_count == 5
    assert capsys.readouterr().err == ""
    args = parser.parse_args(["cluster", "up", "--nodes", "4"])
    assert args.node_count == 4
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "deprecated" in err[0] and "--node-count" in err[0]
    assert "--nodes" not in PAGES["cluster up"].format_help()  # hidden


def test_deprecated_nodes_error_still_names_the_value(capsys):
    """A bad count through the old spelling: the warning, then the one error line, 254."""
    assert cli.main(["cluster", "up", "--cluster-name", "tbad", "--nodes", "0"]) == 254
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "deprecated" in err[0]
    assert err[1] == "dsjepsen: error: --node-count 0: must be 1-200"


def test_old_names_in_options_given_as_data(capsys):
    """Options given as a mapping (the Python API, an extension's own parse) take the old
    name too, with the same warning; giving both names is refused."""
    from dsjepsen import options
    from dsjepsen.errors import ConfigError
    from dsjepsen.workloads.gset import GSetWorkload

    options._warned.discard("--keys")
    values = options.parse_options(GSetWorkload.options, {"keys": "3"}, "g-set")
    assert values["key-count"] == 3
    assert "--keys is now --key-count" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--keys and --key-count are one option"):
        options.parse_options(GSetWorkload.options, {"keys": "3", "key-count": "4"}, "g-set")
