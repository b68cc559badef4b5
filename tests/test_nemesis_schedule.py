"""The fault schedule: seeded rounds (every requested fault before any repeat) and the
time-limit check, whose arithmetic is tested against the runner's real nemesis loop timing.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsjepsen.errors import ConfigError
from dsjepsen.nemesis.catalog import fault_catalog
from dsjepsen.nemesis.schedule import FaultSchedule, check_fits, required_time

ALL = list(fault_catalog())


def starts(s: FaultSchedule, count: int) -> list[str]:
    """The faults of the next `count` start ops (each followed by its stop)."""
    out = []
    for _ in range(count):
        f, value = s.next_op()  # type: ignore[misc]
        assert f.startswith("start-")
        stop_f, stop_value = s.next_op()  # type: ignore[misc]
        assert stop_f.startswith("stop-") and stop_value["fault"] == value["fault"]
        out.append(value["fault"])
    return out


@pytest.mark.parametrize("count", [1, 2, 3, 5, 15])
def test_every_fault_runs_once_per_round_in_a_seeded_order(count: int) -> None:
    orders = set()
    for seed in range(40):
        names = random.Random(seed).sample(ALL, count)
        drawn = starts(FaultSchedule(names, 1, random.Random(f"{seed}:schedule")), 3 * count)
        for r in range(3):
            assert sorted(drawn[r * count : (r + 1) * count]) == sorted(names), (seed, drawn)
        again = starts(FaultSchedule(names, 1, random.Random(f"{seed}:schedule")), 3 * count)
        assert again == drawn
        if count == 3:
            orders.add(tuple(names.index(f) for f in drawn[:3]))
    if count == 3:  # the seed shuffles: many first-round orders over 40 seeds
        assert len(orders) >= 4


def test_repeats_and_none_do_not_make_a_round_longer() -> None:
    s = FaultSchedule(["kill", "none", "pause", "kill"], 1, random.Random(0))
    assert s.names == ["kill", "pause"]
    assert sorted(starts(s, 2)) == ["kill", "pause"]


def test_stop_op_ends_the_active_fault_and_the_round_goes_on() -> None:
    s = FaultSchedule(["kill", "bridge", "pause"], 1, random.Random(1))
    first = s.next_op()
    assert first is not None and s.stop_op() == (
        first[0].replace("start-", "stop-"),
        {"fault": first[1]["fault"]},
    )
    assert s.stop_op() is None
    rest = starts(s, 2)
    assert sorted([first[1]["fault"], *rest]) == ["bridge", "kill", "pause"]


# -- does the run leave time for every fault? ----------------------------------------------------


def loop_windows(count: int, interval: float) -> list[tuple[float, float]]:
    """(start, stop) of each fault as the runner's `_nemesis_loop` times them: it waits
    `interval` before every op, starts and stops alternate (ops take no time here)."""
    return [((2 * i + 1) * interval, (2 * i + 2) * interval) for i in range(count)]


def test_the_message_names_what_would_fit() -> None:
    with pytest.raises(ConfigError) as e:
        check_fits(["kill", "pause", "bridge"], 10, 30)
    assert str(e.value) == (
        "--nemesis: 3 faults need 3 x 2 x 10s = 60s but --time-limit is 30s; "
        "use --time-limit 60 or --nemesis-interval 5"
    )
    with pytest.raises(ConfigError, match=r"^--nemesis: 1 fault needs 1 x 2 x 10s = 20s"):
        check_fits("kill", 10, 15)


def test_what_fits() -> None:
    check_fits(["kill", "pause", "bridge"], 10, 60)  # exactly: the last stop at the limit
    check_fits(["none"], 10, 1)
    check_fits("kill,kill,kill", 10, 20)  # one fault, asked for three times
    check_fits(["kill", "pause"], 0.1, 0.4)  # 2 x 2 x 0.1 is 0.4000000000000001 in floats
    with pytest.raises(ConfigError, match="unknown fault 'bogus'"):
        check_fits(["bogus"], 10, 60)


@given(
    count=st.integers(1, len(ALL)),
    interval=st.sampled_from([0.5, 1, 2.5, 3, 4, 10, 30]),
    time_limit=st.integers(1, 400),
)
def test_check_fits_agrees_with_the_loop_and_its_advice_fits(
    count: int, interval: float, time_limit: int
) -> None:
    names = ALL[:count]
    windows = loop_windows(count, interval)
    try:
        check_fits(names, interval, time_limit)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg
        # refused: the loop would not finish every fault's window before the clients stop
        assert windows[-1][1] > time_limit
        need = re.search(r"use --time-limit (\S+)", msg)
        assert need is not None
        check_fits(names, interval, float(need.group(1)))
        fitting = re.search(r"or --nemesis-interval (\S+)$", msg)
        if fitting is not None:
            check_fits(names, float(fitting.group(1)), time_limit)
            assert float(fitting.group(1)) < interval
        return
    # accepted: every fault starts, and stops, before the time limit
    assert all(stop <= time_limit + 1e-9 for _, stop in windows)
    assert all(start < time_limit for start, _ in windows)
    assert required_time(count, interval) <= time_limit + 1e-9


@pytest.mark.parametrize("mode", ["classic", "combined"])
def test_a_skipped_window_passes_with_no_op_and_the_others_keep_their_faults(mode: str) -> None:
    names = ["partition-majority", "kill", "pause", "clock-bump"]

    def ticks(skip: tuple[int, ...]) -> list[list[tuple[str, object]]]:
        s = FaultSchedule(names, 1, random.Random("7:schedule"), mode=mode, skip=skip)
        return [s.next_ops() for _ in range(12)]

    full, skipped = ticks(()), ticks((2, 5))
    assert all(full)  # every tick of the full schedule does something
    # windows 2 and 5 are ticks 3-4 and 9-10 (0-based 2, 3, 8, 9): nothing there, the rest equal
    for i, (a, b) in enumerate(zip(full, skipped, strict=True)):
        assert b == ([] if i in (2, 3, 8, 9) else a), i
    # the final heal after a skipped window's start stops nothing
    s = FaultSchedule(names, 1, random.Random("7:schedule"), mode=mode, skip=(1,))
    assert s.next_ops() == [] and s.stop_ops() == [] and s.next_ops() != []


def test_shrink_leaves_out_one_window_at_a_time() -> None:
    from dsjepsen.commands.shrink import candidates, windows

    argv = ["--target", "raft-kv", "--nemesis", "partition-majority", "--nemesis-interval", "5",
            "--time-limit", "60", "--nemesis-skip", "2"]  # fmt: skip
    test = {"nemesis": ["partition-majority"], "time_limit": 60.0, "nemesis_interval": 5.0}
    assert windows(argv, test) == 6  # ticks at 5, 10, ... 55 s: windows open at 5, 15, ... 55
    got = [(c, argv[-1]) for c, argv in candidates(argv, test, ["windows"])]
    assert got == [(f"drop fault window {w}", ",".join(sorted(["2", str(w)], key=int)))
                   for w in (1, 3, 4, 5, 6)]  # fmt: skip
    assert list(candidates([*argv[:-1], "1,2,3,4,5"], test, ["windows"])) == []  # one left
    assert windows(["--nemesis", "none"], test) == 0
