"""The kafka workload, its client and its checker (Jepsen's queue/log checker), without a
cluster: the checker on hand-built histories, one per anomaly, each with the ops that prove it
and the cases Jepsen deliberately lets pass; the client through a real relay and a real kafka
node on loopback; the workload's op sequence and final polls. The real-cluster runs (a correct
node valid, the classic 5b bug invalid) are in test_maelstrom_glomers.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from maelstrom_loopback import LoopbackNode

from dsjepsen.checkers.kafka import KafkaChecker, max_offsets
from dsjepsen.history import History, Op
from dsjepsen.targets.maelstrom.client import MaelstromClient
from dsjepsen.workloads.kafka import FINAL_POLL_SECONDS, KafkaWorkload

NODES = Path(__file__).parent / "maelstrom_nodes"
MS = 1_000_000


class Log:
    """Builds a kafka history op by op (each op invoked and completed at once)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def _op(self, p: Any, typ: str, f: str, value: Any, key: Any = None) -> None:
        self.ops.append(Op(len(self.ops), len(self.ops) * MS, p, typ, f, value, key=key, node="n1"))

    def send(self, p: Any, key: str, msg: int, offset: int | None, typ: str = "ok") -> None:
        self._op(p, "invoke", "send", msg, key)
        self._op(p, typ, "send", [offset, msg] if typ == "ok" else msg, key)

    def poll(self, p: Any, msgs: dict[str, list[list[int]]], typ: str = "ok") -> None:
        self._op(p, "invoke", "poll", None)
        self._op(p, typ, "poll", msgs if typ == "ok" else None)

    def assign(self, p: Any, keys: list[str], committed: dict[str, int] | None = None) -> None:
        self._op(p, "invoke", "assign", {"keys": keys})
        self._op(p, "ok", "assign", {"keys": keys, "committed": committed or {}, "offsets": {}})

    def check(self):
        return KafkaChecker().check(History(self.ops))


def sends(log: Log, key: str = "k", n: int = 5) -> None:
    for i in range(n):
        log.send(0, key, 10 + i, i)


def test_a_correct_log_is_valid() -> None:
    log = Log()
    sends(log)
    log.poll(1, {"k": [[0, 10], [1, 11]]})
    log.poll(1, {"k": [[2, 12], [3, 13], [4, 14]]})
    r = log.check()
    assert r.valid is True, r.reason
    assert r.details["error_types"] == [] and r.details["acked"] == 5


@pytest.mark.parametrize(
    ("polls", "kind", "says"),
    [
        # process 1 read 0..1, then began at 3: offset 2 (message 12) skipped
        ([[[0, 10], [1, 11]], [[3, 13], [4, 14]]], "poll-skip", "skipping 1 message(s)"),
        # then began again at 1: backwards
        ([[[0, 10], [1, 11]], [[1, 11], [2, 12]]], "nonmonotonic-poll", "at or before it"),
        # one poll jumping over offset 2
        ([[[0, 10], [1, 11], [3, 13]]], "int-poll-skip", "returned offset 1 then 3"),
        # one poll going backwards
        ([[[0, 10], [1, 11], [1, 11]]], "int-nonmonotonic-poll", "not increasing"),
    ],
)
def test_poll_anomalies_name_the_process_and_the_ops(polls, kind: str, says: str) -> None:
    log = Log()
    sends(log)
    for msgs in polls:
        log.poll(1, {"k": msgs})
    log.poll(9, {"k": [[o, 10 + o] for o in range(5)]})  # everything read in the end
    r = log.check()
    assert r.valid is False and r.details["error_types"] == [kind], r.details
    [a] = r.anomalies
    assert a["type"] == kind and says in a["message"] and a["key"] == "k"
    assert a["ops"] and all(o["f"] == "poll" and o["process"] == 1 for o in a["ops"])


def test_what_resets_a_process_on_a_key_is_not_a_skip() -> None:
    """Jepsen's rules: an assign that drops the key, a poll that lists the key with no
    messages, a crash (a fresh process) all start the process afresh on that key."""
    log = Log()
    sends(log)
    log.poll(1, {"k": [[0, 10]]})
    log.assign(1, ["other"])  # drops k
    log.assign(1, ["k"], {"k": 3})
    log.poll(1, {"k": [[3, 13]]})  # began at the committed offset: fine
    log.poll(1, {"k": []})  # nothing new: the chain starts again
    log.poll(1, {"k": [[0, 10]]})  # a fresh start, not going backwards
    log.poll(2, {"k": [[1, 11], [2, 12]]})
    log.poll(2, {"k": [[4, 14]]}, typ="info")  # a crashed poll records nothing
    log.poll(3, {"k": [[3, 13], [4, 14]]})
    r = log.check()
    assert r.valid is True, r.reason


def test_lost_write_and_unseen_cite_the_send_and_the_poll_that_read_past_it() -> None:
    log = Log()
    sends(log)
    log.poll(1, {"k": [[0, 10], [1, 11]]})
    log.poll(2, {"k": [[3, 13], [4, 14]]})  # nobody ever returns offset 2
    r = log.check()
    assert set(r.details["error_types"]) == {"lost-write", "unseen"}
    lost = next(a for a in r.anomalies if a["type"] == "lost-write")
    assert lost["offset"] == 2 and lost["value"] == 12
    assert "read the key up to offset 4" in lost["message"]
    assert [o["f"] for o in lost["ops"]] == ["send", "poll"]
    # acknowledged and beyond anything read: unseen, not lost
    log = Log()
    sends(log, n=2)
    log.poll(1, {"k": [[0, 10]]})
    r = log.check()
    assert r.details["error_types"] == ["unseen"], r.details


def test_inconsistent_and_duplicate_offsets_and_aborted_reads() -> None:
    log = Log()
    log.send(0, "k", 1, 0)
    log.send(1, "k", 2, 0)  # offset 0 given twice (two nodes numbering on their own)
    log.poll(2, {"k": [[0, 1], [1, 1]]})  # message 1 at offsets 0 and 1
    log.send(3, "k", 7, None, typ="fail")
    log.poll(4, {"k": [[5, 7]]})  # message 7, whose send failed
    r = log.check()
    kinds = set(r.details["error_types"])
    assert {"inconsistent-offsets", "duplicate", "aborted-read"} <= kinds, kinds
    inc = next(a for a in r.anomalies if a["type"] == "inconsistent-offsets")
    assert inc["offset"] == 0 and sorted(inc["values"]) == [1, 2]
    assert "send op" in inc["message"]  # names the ops that said so


def test_nonmonotonic_sends_per_process() -> None:
    log = Log()
    log.send(0, "k", 1, 5)
    log.send(0, "k", 2, 3)  # the same process's next send went back
    log.poll(1, {"k": [[3, 2], [5, 1]]})
    r = log.check()
    assert "nonmonotonic-send" in r.details["error_types"]


def test_a_committed_offset_going_back_is_reported_but_allowed() -> None:
    """Maelstrom's spec: a fresh assign may start at the committed offset 'or lower'."""
    log = Log()
    sends(log)
    log.poll(1, {"k": [[0, 10], [1, 11], [2, 12], [3, 13]]})  # the client commits 3
    log.assign(2, ["k"], {"k": 1})
    log.poll(2, {"k": [[1, 11], [2, 12], [3, 13], [4, 14]]})
    r = log.check()
    assert r.valid is True
    [finding] = r.details["info"]["committed-offset-regression"]
    assert (
        "returned 1" in finding["message"] and "offset 3 had been committed" in finding["message"]
    )


def test_max_offsets_are_the_final_polls_targets() -> None:
    log = Log()
    sends(log, n=3)
    log.poll(1, {"k": [[0, 10]], "j": [[7, 1]]})
    assert max_offsets(log.ops) == {"k": 2, "j": 7}


# -- the client, through a real relay and a real node ------------------------------------------


def _op(f: str, value: Any = None, key: Any = None) -> Op:
    return Op(0, 0, 0, "invoke", f, value, key=key, node="n1")


def test_client_speaks_maelstroms_kafka_rpcs(tmp_path: Path) -> None:
    node = LoopbackNode(tmp_path, [sys.executable, str(NODES / "kafka.py")])
    try:
        assert node.init()["type"] == "init_ok"
        c = MaelstromClient(node.net, "n1", "c1", 5.0)
        assert c.invoke(_op("send", 5, "a")).value == [0, 5]
        assert c.invoke(_op("send", 6, "a")).value == [1, 6]
        assert c.invoke(_op("poll")).value == {}  # nothing assigned yet
        got = c.invoke(_op("assign", {"keys": ["a"]}))
        assert got.type == "ok" and got.value["offsets"] == {"a": 0}
        poll = c.invoke(_op("poll"))
        assert (poll.type, poll.value) == ("ok", {"a": [[0, 5], [1, 6]]})
        assert c.kafka.offsets == {"a": 2}  # the next poll starts after what it read
        # the poll committed offset 1: a fresh client resumes there ("or lower")
        fresh = MaelstromClient(node.net, "n1", "c2", 5.0)
        got = fresh.invoke(_op("assign", {"keys": ["a"]}))
        assert got.value["committed"] == {"a": 1} and got.value["offsets"] == {"a": 1}
        crash = fresh.invoke(_op("crash"))
        assert crash.type == "info"
        seek = c.invoke(_op("assign", {"keys": ["a"], "seek_to_beginning": True}))
        assert seek.value["offsets"] == {"a": 0}
    finally:
        node.close()


# -- the workload ----------------------------------------------------------------------------


def test_workload_is_a_function_of_its_seed_and_retires_keys() -> None:
    a = [KafkaWorkload(seed=3).next_op() for _ in range(2000)]
    assert a == [KafkaWorkload(seed=3).next_op() for _ in range(2000)][: len(a)]
    w = KafkaWorkload(seed=3, keys=2, max_writes_per_key=4)
    ops = [w.next_op() for _ in range(500)]
    per_key: dict[str, list[int]] = {}
    for o in ops:
        if o.f == "send":
            per_key.setdefault(o.key, []).append(o.value)
    assert all(v == list(range(1, len(v) + 1)) and len(v) <= 4 for v in per_key.values())
    assert len(per_key) > 2  # keys were retired for fresh ones
    kinds = {o.f for o in ops}
    assert {"send", "poll", "assign"} <= kinds


def test_final_polls_go_on_until_every_offset_is_reached() -> None:
    w = KafkaWorkload(seed=1)
    run = Log()
    sends(run, n=3)  # the run saw offsets 0..2 of k
    final_from = len(run.ops)

    def comp(f: str, value: Any, typ: str = "ok", t: int = 0) -> Op:
        return Op(0, t, 5, typ, f, value)

    assign = comp("assign", {"keys": ["k"], "seek_to_beginning": True})
    more = w.final_followups([assign, comp("poll", {"k": [[0, 10]]})], run.ops, final_from)
    assert [s.f for s in more] == ["poll"]
    done = [assign, comp("poll", {"k": [[0, 10], [1, 11], [2, 12]]})]
    assert w.final_followups(done, run.ops, final_from) == []
    crashed = [assign, comp("poll", None, "info")]
    assert [s.f for s in w.final_followups(crashed, run.ops, final_from)] == ["assign", "poll"]
    late = [assign, comp("poll", {}, t=int(FINAL_POLL_SECONDS * 1e9) + 1)]
    assert w.final_followups(late, run.ops, final_from) == []
