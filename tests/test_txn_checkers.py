"""The transactional checkers (list-append, rw-register): each anomaly kind on a hand-written
history that shows it and on one a step away that does not, Elle's example histories with the
verdicts Elle's tests assert, the explanations, and bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.checkers.list_append import check_list_append
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.rw_register import check_rw_register
from dsjepsen.errors import InputError
from dsjepsen.formats import read_history
from dsjepsen.formats.edn import parse_edn
from dsjepsen.history import History, Op

ELLE = Path(__file__).resolve().parents[2] / "shared" / "histories" / "elle"


def mops(text: str) -> list[list[Any]]:
    """`ax1 ry12 rz` -> [[append x 1] [r y [1 2]] [r z nil]]; `ry-`: [r y []];
    rw-register: `wx1 rx1 rx_`."""
    out: list[list[Any]] = []
    for tok in text.split():
        m = re.fullmatch(r"([arw])([a-z])(.*)", tok)
        assert m, tok
        f, k, rest = m.groups()
        if f == "a":
            out.append(["append", k, int(rest)])
        elif f == "w":
            out.append(["w", k, int(rest)])
        elif rest == "":
            out.append(["r", k, None])
        elif rest == "-":
            out.append(["r", k, []])
        elif rest == "_":
            out.append(["r", k, None])
        elif rest.startswith("="):
            out.append(["r", k, int(rest[1:])])
        else:
            out.append(["r", k, [int(c) for c in rest]])
    return out


def H(*txns: tuple[Any, ...] | str, rw: bool = False) -> History:
    """Transactions run one after another, each by its own process unless given: a string
    is an ok transaction; (text, type) or (text, type, process) sets them. With rw, reads
    are `rx=1` / `rx_` (nil)."""
    ops: list[Op] = []
    for n, t in enumerate(txns):
        text, typ, proc = (t, "ok", n) if isinstance(t, str) else (*t, n)[:3]
        done = mops(text)
        invoked = [[f, k, None if f == "r" else v] for f, k, v in done]
        ops.append(Op(len(ops), len(ops), proc, "invoke", "txn", invoked))
        ops.append(Op(len(ops), len(ops), proc, typ, "txn", done if typ == "ok" else invoked))
    return History(ops)


def concurrent(*txns: str) -> History:
    """All invoked, then all completed ok, in order: no real-time order between them."""
    ops = [Op(i, i, i, "invoke", "txn", mops(t)) for i, t in enumerate(txns)]
    ops += [Op(len(txns) + i, len(txns) + i, i, "ok", "txn", mops(t)) for i, t in enumerate(txns)]
    return History(ops)


def kinds(r: CheckResult) -> list[str]:
    return list(r.details["anomaly_types"])


def la(h: History, consistency: str | None = "strict-serializable") -> CheckResult:
    return check_list_append(h, consistency)


# ---------------------------------------------------------------------------------------------
# Each anomaly, and one step away from it


def test_g0_and_consistent_orders() -> None:
    r = la(H("ax1 ay1", "ax2 ay2", "rx12 ry21"), "read-uncommitted")
    assert r.valid is False and kinds(r) == ["G0"] and r.details["not"] == ["read-uncommitted"]
    near = la(H("ax1 ay1", "ax2 ay2", "rx12 ry12"), "read-uncommitted")
    assert near.valid is True


def test_g1a_aborted_read() -> None:
    r = la(H(("ax1", "fail"), "rx1"), "read-committed")
    assert r.valid is False and "G1a" in kinds(r)
    assert r.details["not"] == ["read-committed"]
    # read uncommitted allows it: the only other finding is an empty graph (unknown)
    assert la(H(("ax1", "fail"), "rx1"), "read-uncommitted").valid == "unknown"
    near = la(H(("ax1", "fail"), "rx-"), "read-committed")
    assert "G1a" not in near.details["anomaly_counts"]


def test_g1b_intermediate_read() -> None:
    r = la(concurrent("ax1 ax2", "rx1"), "read-committed")
    assert r.valid is False and "G1b" in kinds(r)
    near = la(concurrent("ax1 ax2", "rx12"), "read-committed")
    assert near.valid is True


def test_g1c_circular_information_flow() -> None:
    h = H("ax1 ry1", "ax2 ay1", "rx12")
    assert la(h, "read-uncommitted").valid is True  # no write cycle
    r = la(h, "read-committed")
    assert r.valid is False and kinds(r) == ["G1c"] and r.details["not"] == ["read-committed"]
    assert la(H("ax1 ry-", "ax2 ay1", "rx12"), "read-committed").valid is True


def test_g_single_item() -> None:
    r = la(concurrent("ax1 ay1", "ax2 ry-", "rx12"), "serializable")
    assert kinds(r) == ["G-single-item"] and r.details["not"] == [
        "consistent-view",
        "repeatable-read",
    ]
    assert la(concurrent("ax1 ay1", "ax2 ry-", "rx12"), "read-committed").valid is True
    assert la(concurrent("ax1 ay1", "ax2 ry1", "rx12"), "serializable").valid is True


def test_g_nonadjacent_item() -> None:
    h = concurrent("ax1", "rx1 ry-", "ay1", "ry1 rx-")
    r = la(h, "snapshot-isolation")
    assert kinds(r) == ["G-nonadjacent-item"]
    assert r.details["not"] == ["repeatable-read", "snapshot-isolation"]
    # Elle's counter-example: wr, rw, rw, wr, rw edges with two anti-dependencies in a row
    adj = concurrent("rx5 ay1", "ry- az2", "rz- at3", "rt3 au4", "ru- ax5")
    assert la(adj, "snapshot-isolation").valid is True


def test_g2_item_and_read_committed() -> None:
    h = concurrent("ax1 ry-", "ay1 rx-")
    assert la(h, "read-committed").valid is True
    r = la(h, "repeatable-read")
    assert r.valid is False and kinds(r) == ["G2-item"] and r.details["not"] == ["repeatable-read"]
    assert la(concurrent("ax1 ry-", "ay1 rx1"), "repeatable-read").valid is True


def test_process_and_realtime_variants() -> None:
    # T1 anti-depends on T2, but T1 comes first: on one process, then in real time only
    session = H(("ax1", "ok", 0), ("ax2", "ok", 1), ("rx1", "ok", 1), ("rx12", "ok", 2))
    assert la(session, "serializable").valid is True
    r = la(session, "strong-session-snapshot-isolation")
    assert kinds(r) == ["G-single-item-process"]
    assert r.details["not"] == ["strong-session-snapshot-isolation"]
    rt = H("ax1", "ax2", "rx1", "rx12")
    r = la(rt, "strict-serializable")
    assert kinds(r) == ["G-single-item-realtime"] and r.details["not"] == [
        "strong-snapshot-isolation"
    ]
    # the same transactions all overlapping: no real-time order, nothing to report
    assert la(concurrent("ax1", "ax2", "rx1", "rx12"), "strict-serializable").valid is True
    # Elle issue 21: wr, process, wr
    g1c_p = H(("rx1 ay1", "ok", 1), ("ry1", "ok", 2), ("ax1", "ok", 2))
    r = la(g1c_p, "strong-session-snapshot-isolation")
    assert kinds(r) == ["G1c-process"] and r.details["not"] == ["strong-session-read-committed"]


def test_internal_and_future_reads() -> None:
    r = la(H("ax1 ax2 ax4", "ax3 rx1234"), "serializable")
    assert "internal" in kinds(r)
    assert "[... 3]" in r.anomalies[0]["message"] or any(
        "[... 3]" in a["message"] for a in r.anomalies
    )
    assert (
        "internal"
        not in la(H("ax1 ax2 ax4", "ax3 rx1243"), "serializable").details["anomaly_counts"]
    )
    fr = la(H("rx1 ax1"), "read-committed")
    assert "future-read" in kinds(fr) and fr.details["not"] == ["read-committed"]
    assert "future-read" not in la(H("rx- ax1"), "read-committed").details["anomaly_counts"]


def test_dirty_update() -> None:
    r = la(H(("ax1", "fail"), "ax2", "rx12"), "read-committed")
    assert {"G1a", "dirty-update"} <= set(kinds(r))
    # an info append in between leaves the verdict to what is known on either side
    r = la(H(("ax1", "fail"), ("ax2", "info"), "ax3", "rx123"), "read-committed")
    assert "dirty-update" in kinds(r)
    near = la(H(("ax1", "fail"), "ax2", "rx2"), "read-committed")
    assert "dirty-update" not in near.details["anomaly_counts"]


def test_duplicate_elements_and_incompatible_orders() -> None:
    r = la(H("ax1", "rx11"), "read-uncommitted")
    assert kinds(r) == ["duplicate-elements"] and r.details["not"] == ["read-uncommitted"]
    assert la(H("ax1", "rx1"), "read-uncommitted").valid is True
    r = la(H("ax1", "ax3", "rx13", "ax2", "rx123"), "read-committed")
    assert "incompatible-order" in kinds(r)
    assert r.anomalies and any(a["type"] == "incompatible-order" for a in r.anomalies)
    assert (
        "incompatible-order"
        not in la(H("ax1", "ax2", "rx12", "ax3", "rx123"), "read-committed").details[
            "anomaly_counts"
        ]
    )


def test_lost_update() -> None:
    r = la(H("ax0", "rx0 ax1", "rx0 ax2"), "strict-serializable")
    assert set(kinds(r)) == {"G2-item", "lost-update"}
    assert r.details["not"] == ["cursor-stability", "update-atomic"]
    assert la(H("ax0", "rx0 ax1", "rx01 ax2"), "strict-serializable").valid is True
    # one transaction writing twice over its own read is no lost update
    assert la(H("rx- ax1 ax2", "rx12"), "strict-serializable").valid is True


def test_unobserved_writes_order_after_everything_read() -> None:
    # y never sees 1, so its append comes after the 2 that was read: a G-single and a G0
    h = concurrent("ax1 ay1", "ax2 ay2", "ax3 ay3", "rx12", "ry2")
    assert set(kinds(la(h, "serializable"))) == {"G0", "G-single-item"}


def test_an_append_nobody_read_follows_every_read() -> None:
    # process 0 appends 1 to x, then reads x empty: the read precedes the append (rw), the
    # append precedes the read (process order)
    r = la(H(("ax1", "ok", 0), ("rx-", "ok", 0)), "strong-session-serializable")
    assert kinds(r) == ["G-single-item-process"]
    assert la(H(("ax1", "ok", 0), ("rx1", "ok", 0)), "strong-session-serializable").valid is True


# ---------------------------------------------------------------------------------------------
# rw-register


def rw(h: History, consistency: str = "serializable", *sources: str) -> CheckResult:
    return check_rw_register(h, consistency, sources=("initial-state", *sources))


def test_rw_initial_state_makes_g_single() -> None:
    h = concurrent("rx_ ry=1", "wy1 wx2")
    r = rw(h)
    assert kinds(r) == ["G-single-item"]
    assert rw(concurrent("rx=2 ry=1", "wy1 wx2")).valid is True


def test_rw_writes_follow_reads_only_when_asked() -> None:
    h = concurrent("ry=1 wx1 wy2", "rx=1 ry=1")
    assert rw(h).valid is True  # nothing orders 1 before 2 on y
    r = rw(h, "serializable", "wfr-keys")
    assert kinds(r) == ["G-single-item"]


def test_rw_lost_update_g1c_internal_g1a_g1b() -> None:
    lu = rw(concurrent("rx=0 wx1", "rx=0 wx2"), "strict-serializable")
    assert "lost-update" in kinds(lu) and lu.details["not"] == ["cursor-stability", "update-atomic"]
    g1c = rw(concurrent("wx1 ry=1", "wy1 rx=1"), "read-committed")
    assert kinds(g1c) == ["G1c"]
    assert rw(concurrent("wx1 ry=1", "wy1 rx=1"), "read-uncommitted").valid is True
    internal = rw(H("rx=1 rx=2"), "serializable")
    assert "internal" in kinds(internal)
    assert "internal" not in rw(H("rx=1 wx3 rx=3"), "serializable").details["anomaly_counts"]
    g1a = rw(H(("wx1", "fail"), "rx=1"), "read-committed")
    assert "G1a" in kinds(g1a)
    g1b = rw(H("wx1 wx2", "rx=1"), "read-committed")
    assert "G1b" in kinds(g1b)
    assert "G1b" not in rw(H("wx1 wx2", "rx=2"), "read-committed").details["anomaly_counts"]


def test_rw_cyclic_versions_leave_the_source_out() -> None:
    h = H(("wx1", "ok", 0), ("wx2", "ok", 0), ("rx=1", "ok", 0))
    r = rw(h, "strict-serializable", "sequential-keys")
    assert kinds(r) == ["cyclic-versions"] and r.details["not"] == ["read-uncommitted"]
    assert r.details["version_sources"] == ["initial-state"]
    ok = rw(
        H(("wx1", "ok", 0), ("wx2", "ok", 0), ("rx=2", "ok", 0)),
        "strict-serializable",
        "sequential-keys",
    )
    assert ok.valid is True and ok.details["version_sources"] == [
        "initial-state",
        "sequential-keys",
    ]


def test_rw_linearizable_keys_and_g0() -> None:
    h = H(("wx1 wy2", "ok", 0), ("wx2 wy1", "ok", 1), ("rx=2", "ok", 0), ("ry=2", "ok", 1))
    assert kinds(rw(h, "read-uncommitted", "sequential-keys")) == ["G0"]
    r = rw(H("wx1", "rx=2", "rx=1"), "strict-serializable", "linearizable-keys")
    assert kinds(r) == ["cyclic-versions"]


def test_rw_reads_knossos_spelling() -> None:
    h = History(
        [
            Op(0, 0, 0, "invoke", "txn", [["write", "x", 1], ["read", "y", None]]),
            Op(1, 1, 1, "invoke", "txn", [["write", "y", 1], ["read", "x", None]]),
            Op(2, 2, 0, "ok", "txn", [["write", "x", 1], ["read", "y", 1]]),
            Op(3, 3, 1, "ok", "txn", [["write", "y", 1], ["read", "x", 1]]),
        ]
    )
    assert kinds(rw(h, "read-committed")) == ["G1c"]


# ---------------------------------------------------------------------------------------------
# Explanations


def test_cycle_explained_step_by_step() -> None:
    r = la(H("ax1 ry1", "ax2 ay1", "rx12"), "serializable")
    (a,) = r.anomalies
    assert [s["type"] for s in a["steps"]] == ["ww", "wr"]
    assert [t["name"] for t in a["cycle"]] == ["T1", "T2"]
    assert a["cycle"][0]["index"] == 1 and a["cycle"][0]["process"] == 0
    assert a["message"] == (
        "T1 appended 1 to key x and T2 appended 2 right after it, so T1 < T2 (ww); "
        "T1's read of key y saw T2's append of 1, so T2 < T1 (wr): so T1 < T1, a cycle"
    )
    rwr = rw(concurrent("rx_ ry=1", "wy1 wx2"))
    text = rwr.anomalies[0]["message"]
    assert "read key x = nil (never written)" in text and "(rw)" in text and "(wr)" in text
    rt = la(H("ax1", "ax2", "rx1", "rx12"), "strict-serializable")
    assert "completed (index 3) before T" in rt.anomalies[0]["message"]


def test_nodes_in_the_transactions() -> None:
    ops = [
        Op(0, 0, 0, "invoke", "txn", mops("ax1 ry"), node="n1"),
        Op(1, 1, 1, "invoke", "txn", mops("ay1 rx"), node="n2"),
        Op(2, 2, 0, "ok", "txn", mops("ax1 ry-"), node="n1"),
        Op(3, 3, 1, "ok", "txn", mops("ay1 rx-"), node="n2"),
    ]
    r = la(History(ops), "serializable")
    assert {t["node"] for t in r.anomalies[0]["cycle"]} == {"n1", "n2"}


# ---------------------------------------------------------------------------------------------
# Elle's histories and README example


README_EXAMPLE = """\
{:type :ok, :value [[:append :x 1] [:r :y [1]]]}
{:type :ok, :value [[:append :x 2] [:append :y 1]]}
{:type :ok, :value [[:r :x [1 2]]]}
"""


def test_elle_readme_example_is_g1c_not_read_committed() -> None:
    h = parse_edn(README_EXAMPLE, "readme.edn")
    r = check_list_append(h, "serializable")
    assert r.valid is False and kinds(r) == ["G1c"] and r.details["not"] == ["read-committed"]
    assert all(t["process"] is None and t["call"] is None for t in r.anomalies[0]["cycle"])


def test_elle_si_without_g_single() -> None:
    path = ELLE / "si-without-g-single.edn"
    if not path.exists():
        pytest.skip(f"Elle's histories are not at {ELLE} (../shared/histories/elle)")
    r = check_list_append(read_history(path), "snapshot-isolation,repeatable-read")
    assert r.valid is False
    assert kinds(r) == ["G2-item"]
    assert r.details["not"] == ["repeatable-read"]


def test_every_elle_history_checks_without_error() -> None:
    files = sorted(ELLE.glob("*.edn")) if ELLE.exists() else []
    if not files:
        pytest.skip(f"Elle's histories are not at {ELLE} (../shared/histories/elle)")
    for path in files:
        r = check_list_append(read_history(path), None)
        assert r.valid in (True, False, "unknown"), path
        assert "checker failed" not in (r.reason or ""), path


# ---------------------------------------------------------------------------------------------
# Unknown and bad input


def test_no_dependencies_is_unknown() -> None:
    r = la(concurrent("ax1", "ay1"), "serializable")
    assert r.valid == "unknown" and kinds(r) == ["empty-transaction-graph"]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([["append", "x", 1], 5], "micro-op is not a list: 5"),
        ([["frob", "x", 1]], "unknown micro-op 'frob'"),
        ([["append", "x"]], "has 2 elements"),
    ],
)
def test_bad_micro_ops_are_one_line(value: list[Any], fragment: str) -> None:
    h = History(
        [Op(0, 0, 0, "invoke", "txn", value, line=7), Op(1, 1, 0, "ok", "txn", value, line=8)]
    )
    with pytest.raises(InputError) as e:
        check_list_append(h)
    assert fragment in str(e.value) and e.value.line == 8 and "\n" not in str(e.value)


def test_read_that_is_not_a_list_and_duplicates_are_refused() -> None:
    h = History(
        [
            Op(0, 0, 0, "invoke", "txn", [["r", "x", None]]),
            Op(1, 1, 0, "ok", "txn", [["r", "x", 3]]),
        ]
    )
    with pytest.raises(InputError, match="read of key x is not a list: 3"):
        check_list_append(h)
    dup = H("ax1", "ax1")
    with pytest.raises(InputError, match="value 1 is appended to key x more than once"):
        check_list_append(dup)
    with pytest.raises(InputError, match="value 1 is written to key x more than once"):
        check_rw_register(H("wx1", "wx1"))
    with pytest.raises(InputError, match="unknown micro-op 'append'"):
        check_rw_register(H("ax1"))
    with pytest.raises(InputError, match="checks transactions"):
        check_list_append(
            History([Op(0, 0, 0, "invoke", "read", None), Op(1, 1, 0, "ok", "read", 1)])
        )


def test_empty_graph_means_no_transaction_ordered_before_another() -> None:
    # one transaction: real time orders nothing, so the graph is empty even for strict models
    assert "empty-transaction-graph" in kinds(la(H("rx1 ax1"), "strict-serializable"))
    # two in a row: real time orders them, the graph is not empty
    assert la(H("ax1", "ay1"), "strict-serializable").valid is True
    assert la(H("ax1", "ay1"), "serializable").valid == "unknown"


@pytest.mark.parametrize("seed", range(40))
def test_realtime_order_points_and_cover_keep_every_pair(seed: int) -> None:
    """The chain of order points reaches b from a exactly when a completed ok before b was
    invoked; the covering pairs inside a set of transactions have the same closure."""
    import random

    import numpy as np

    from dsjepsen.checkers.graph import Digraph
    from dsjepsen.checkers.txn import Edges, collect_txns, realtime_edges

    rng = random.Random(seed)
    n = rng.randint(2, 9)
    events = [(i, e) for i in range(n) for e in ("invoke", "done")]
    rng.shuffle(events)
    events.sort(key=lambda ie: (ie[0], ie[1] != "invoke"))  # invoke before done per txn
    rng.shuffle(events)
    order: list[tuple[int, str]] = []
    opened: set[int] = set()
    pending = list(events)
    while pending:  # keep each txn's invoke before its completion
        for ev in pending:
            if ev[1] == "invoke" or ev[0] in opened:
                pending.remove(ev)
                order.append(ev)
                opened.add(ev[0])
                break
    types = {i: rng.choice(("ok", "ok", "info", "fail")) for i in range(n)}
    ops = []
    for i, what in order:
        typ = "invoke" if what == "invoke" else types[i]
        ops.append(Op(len(ops), len(ops), i, typ, "txn", [["append", f"k{i}", 1]]))
    txns = collect_txns(History(ops), "t")
    edges = Edges()
    realtime_edges(txns, edges)
    g = Digraph()
    src, dst, _ = edges.arrays()
    for a, b in zip(src.tolist(), dst.tolist(), strict=True):
        g.add_edge(a, b)
    rt = edges.realtime
    assert rt is not None
    cover = Digraph()
    cs, cd = rt.cover(np.arange(len(txns)))
    for a, b in zip(cs.tolist(), cd.tolist(), strict=True):
        cover.add_edge(a, b)
    for a in range(len(txns)):
        for b in range(len(txns)):
            if a == b:
                continue
            oa, ob = txns.ops[a], txns.ops[b]
            expected = (
                oa.type == "ok" and ob.type != "fail" and oa.ret is not None and oa.ret < ob.call
            )
            assert (b in g.descendants(a)) == expected, (a, b)
            assert (b in cover.descendants(a) if a in cover else False) == expected, (a, b)


def test_an_indeterminate_transactions_reads_order_nothing() -> None:
    """An info transaction that saw its own append (and then, perhaps, aborted) says nothing
    about the order of x: a later committed append of 6 in 5's place is no anomaly."""
    ops = [
        Op(0, 0, 0, "invoke", "txn", [["append", "x", 1]]),
        Op(1, 1, 0, "ok", "txn", [["append", "x", 1]]),
        Op(2, 2, 1, "invoke", "txn", [["append", "x", 5], ["r", "x", None]]),
        Op(3, 3, 1, "info", "txn", [["append", "x", 5], ["r", "x", [1, 5]]]),
        Op(4, 4, 2, "invoke", "txn", [["append", "x", 6]]),
        Op(5, 5, 2, "ok", "txn", [["append", "x", 6]]),
        Op(6, 6, 3, "invoke", "txn", [["r", "x", None]]),
        Op(7, 7, 3, "ok", "txn", [["r", "x", [1, 6]]]),
    ]
    r = la(History(ops), "strict-serializable")
    assert r.valid is True, r.details["anomaly_types"]


def test_a_search_out_of_time_still_decides_by_cycle_existence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no time to search, a component gets a cycle-search-timeout (unknown) and some
    cycle to show, named by what it is (and Elle's cycle-exists findings, dropped here since
    the cycle shown already rules out what they would)."""
    from dsjepsen.checkers import txn

    monkeypatch.setattr(txn, "SCC_SECONDS", -1.0)  # every component's time is already up
    h = concurrent("ax1 ry-", "ay1 rx-")  # G2-item: repeatable read forbids it
    r = la(h, "repeatable-read")
    assert r.valid is False
    assert kinds(r) == ["G2-item", "cycle-search-timeout"]
    assert r.details["search_timeouts"] == 1
    (timeout,) = [a for a in r.anomalies if a["type"] == "cycle-search-timeout"]
    assert timeout["scc_size"] == 2 and timeout["anomaly_spec_type"] == "G2-item"
    # read committed allows the cycle: what is left is the undecided search
    assert la(h, "read-committed").valid == "unknown"
