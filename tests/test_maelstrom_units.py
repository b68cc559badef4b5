"""The maelstrom target's parts without namespaces: services, the client's op mapping, the
relay (run for real on loopback with real node programs), checkers and the command line."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from maelstrom_loopback import LoopbackNode, free_port

from dsjepsen.checkers.availability import AvailabilityChecker, parse_availability
from dsjepsen.checkers.base import CheckContext
from dsjepsen.checkers.broadcast import BroadcastChecker
from dsjepsen.checkers.echo import EchoChecker
from dsjepsen.checkers.unique_ids import UniqueIdsChecker
from dsjepsen.errors import ConfigError
from dsjepsen.history import History, Op
from dsjepsen.targets.maelstrom.client import MaelstromClient
from dsjepsen.targets.maelstrom.net import Network
from dsjepsen.targets.maelstrom.netstats import network_stats
from dsjepsen.targets.maelstrom.services import LinKv, LinTso, LwwKv, SeqKv, ServiceError
from dsjepsen.targets.maelstrom.target import RELAY, topology

NODES = Path(__file__).parent / "maelstrom_nodes"


# -- services -----------------------------------------------------------------------------------


def test_lin_kv_service_semantics() -> None:
    kv = LinKv()
    with pytest.raises(ServiceError) as e:
        kv.handle("n0", {"type": "read", "key": 1})
    assert e.value.code == 20
    assert kv.handle("n0", {"type": "write", "key": 1, "value": 5})["type"] == "write_ok"
    with pytest.raises(ServiceError) as e:
        kv.handle("n1", {"type": "cas", "key": 1, "from": 4, "to": 6})
    assert e.value.code == 22
    kv.handle("n1", {"type": "cas", "key": 1, "from": 5, "to": 6})
    assert kv.handle("n2", {"type": "read", "key": 1}) == {"type": "read_ok", "value": 6}
    kv.handle("n1", {"type": "cas", "key": 2, "from": 0, "to": 1, "create_if_not_exists": True})
    assert kv.handle("n2", {"type": "read", "key": 2})["value"] == 1
    with pytest.raises(ServiceError) as e:
        kv.handle("n0", {"type": "write", "key": 3})
    assert e.value.code == 12


def test_seq_kv_reads_go_stale_but_never_back_for_one_caller() -> None:
    kv = SeqKv(random.Random(7))
    for v in range(1, 51):
        kv.handle("n0", {"type": "write", "key": "x", "value": v})
    firsts = []
    for caller in range(1, 21):
        seen = [kv.handle(f"n{caller}", {"type": "read", "key": "x"})["value"] for _ in range(20)]
        assert seen == sorted(seen), "one caller's reads went back in the total order"
        firsts.append(seen[0])
    assert min(firsts) < 50, "no stale read at all"
    # a writer's own next read sees at least its write
    kv.handle("n2", {"type": "write", "key": "x", "value": 99})
    assert kv.handle("n2", {"type": "read", "key": "x"})["value"] == 99


def test_lww_kv_loses_concurrent_writes_and_tso_increases() -> None:
    kv = LwwKv(replicas=3, merge_interval=0.0, rng=random.Random(1))
    for v in range(10):
        kv.handle("n0", {"type": "write", "key": "k", "value": v})
    assert kv.handle("n1", {"type": "read", "key": "k"})["value"] == 9  # last writer wins
    tso = LinTso()
    ts = [tso.handle("n0", {"type": "ts"})["ts"] for _ in range(5)]
    assert ts == sorted(set(ts))


# -- the relay and the client, on loopback ---------------------------------------------------


def _op(f: str, value=None, key=None) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f=f, value=value, key=key, node="n1")


def test_relay_runs_a_perl_node_and_counts_malformed_output(tmp_path: Path) -> None:
    perl = LoopbackNode(tmp_path, ["perl", str(NODES / "echo.pl")])
    try:
        assert perl.init()["type"] == "init_ok"
        comp = MaelstromClient(perl.net, "n1", "c1", 2.0).invoke(_op("echo", "hi"))
        assert (comp.type, comp.value) == ("ok", "hi")
    finally:
        perl.close()
    bad = LoopbackNode(tmp_path, [sys.executable, str(NODES / "malformed.py")], mid="n0")
    try:
        assert bad.init()["type"] == "init_ok"
        comp = MaelstromClient(bad.net, "n1", "c1", 2.0).invoke(_op("echo", "x"))
        assert comp.type == "ok" and comp.value == "x"
        deadline = time.monotonic() + 5
        while bad.net.summary()["malformed"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        kinds = bad.net.summary()["malformed_by_kind"]
        assert kinds == {
            "not JSON": 1,
            "no dest": 1,
            "reply to unknown msg_id": 1,
            "unknown dest": 1,
        }, kinds
    finally:
        bad.close()
    logged = [line for line in bad.log.read_text().splitlines() if '"malformed"' in line]
    assert len(logged) == 3  # the relay saw three; the unknown msg_id is the controller's


def test_client_maps_errors_and_a_dead_node(tmp_path: Path) -> None:
    node = LoopbackNode(tmp_path, [sys.executable, str(NODES / "lin_kv.py"), "--local"])
    try:
        node.init()
        c = MaelstromClient(node.net, "n1", "c1", 2.0)
        assert c.invoke(_op("read", key=1)).type == "ok"  # 20 on a read: ok, nothing there
        assert c.invoke(_op("read", key=1)).value is None
        cas = c.invoke(_op("cas", [1, 2], key=1))
        assert cas.type == "fail" and cas.error["code"] == 20
        assert c.invoke(_op("write", 3, key=1)).type == "ok"
        assert c.invoke(_op("read", key=1)).value == 3
        assert c.invoke(_op("cas", [4, 5], key=1)).type == "fail"
        assert c.invoke(_op("echo", "x")).type == "fail"  # code 10: not supported, definite
        assert c.invoke(_op("increment", 1, key=3)).type == "fail"  # one counter per node
        node.proc.kill()
        node.proc.wait(timeout=10)
        time.sleep(0.2)
        comp = c.invoke(_op("write", 4, key=1))
        assert comp.type == "fail" and "down" in comp.error
    finally:
        node.close()


def test_requests_wait_for_init_and_peers_talk_before_init(tmp_path: Path) -> None:
    node = LoopbackNode(tmp_path, [sys.executable, str(NODES / "echo.py")])
    try:
        early = MaelstromClient(node.net, "n1", "c1", 2.0).invoke(_op("echo", "x"))
        assert early.type == "fail" and "no init_ok" in early.error
        # a peer's datagram before init is held, then delivered after init_ok
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            msg = {"src": "n1", "dest": "n0", "body": {"type": "echo", "echo": 1, "msg_id": 5}}
            s.sendto(json.dumps(msg).encode(), ("127.0.0.1", node.port))
        time.sleep(0.3)
        assert node.init()["type"] == "init_ok"
        deadline = time.monotonic() + 5
        while (
            time.monotonic() < deadline and '"dir": "in", "src": "n1"' not in node.log.read_text()
        ):
            time.sleep(0.05)
        lines = node.log.read_text().splitlines()
        kinds = [(json.loads(x)["dir"], json.loads(x).get("src")) for x in lines]
        assert kinds.index(("in", "n1")) > kinds.index(("out", "n0"))  # after init_ok
    finally:
        node.close()


def test_relay_exit_is_reported(tmp_path: Path) -> None:
    node = LoopbackNode(tmp_path, [sys.executable, "-c", "import time; time.sleep(0.5)"])
    try:
        deadline = time.monotonic() + 10
        while node.link.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.link.exit_code == 0
    finally:
        node.close()


# -- checkers -----------------------------------------------------------------------------------


def _history(pairs: list[tuple[str, object, str, object, str]]) -> History:
    """(f, invoked value, type, completion value, node) per op, one after another."""
    ops, i = [], 0
    for p, (f, value, kind, out, node) in enumerate(pairs):
        ops.append(Op(i, i, p, "invoke", f, value, None, node))
        ops.append(Op(i + 1, i + 1, p, kind, f, out, None, node))
        i += 2
    return History(ops)


def test_unique_ids_echo_and_availability_checkers() -> None:
    ctx = CheckContext()
    dup = _history([("generate", None, "ok", 1, "n1"), ("generate", None, "ok", 1, "n2")])
    assert UniqueIdsChecker().check(dup, ctx).valid is False
    fine = _history([("generate", None, "ok", "n0-1", "n1"), ("generate", None, "ok", 1, "n2")])
    assert UniqueIdsChecker().check(fine, ctx).valid is True
    assert EchoChecker().check(_history([("echo", "a", "ok", "b", "n1")]), ctx).valid is False
    assert EchoChecker().check(_history([("echo", "a", "ok", "a", "n1")]), ctx).valid is True
    half = _history([("echo", "a", "ok", "a", "n1"), ("echo", "b", "info", None, "n1")])
    assert AvailabilityChecker(1.0).check(half, ctx).valid is False
    assert AvailabilityChecker(0.5).check(half, ctx).valid is True
    assert parse_availability("total") == 1.0
    with pytest.raises(ConfigError):
        parse_availability("most")


def test_broadcast_checker_wants_every_message_on_every_node() -> None:
    ops = [
        ("broadcast", 1, "ok", 1, "n1"),
        ("broadcast", 2, "ok", 2, "n2"),
        ("read-messages", None, "ok", [1, 2], "n1"),
        ("read-messages", None, "ok", [1], "n2"),
    ]
    h = _history(ops)
    ctx = CheckContext(final_from_index=4, healed_at=4)
    assert BroadcastChecker().check(h, ctx).valid is False
    ops[3] = ("read-messages", None, "ok", [2, 1], "n2")
    assert BroadcastChecker().check(_history(ops), ctx).valid is True


def test_network_stats_count_as_maelstrom_does() -> None:
    """Sends and receives per class; a client is either end of a client message (init
    included), services count as servers; msgs-per-op for all and servers only."""
    entries = [
        {"dir": "in", "src": "c0", "dest": "n0", "type": "init"},
        {"dir": "out", "src": "n0", "dest": "c0", "type": "init_ok"},
        {"dir": "in", "src": "c1", "dest": "n0"},
        {"dir": "out", "src": "n0", "dest": "n1"},
        {"dir": "out", "src": "n0", "dest": "n2"},  # dropped by a partition: never received
        {"dir": "in", "src": "n0", "dest": "n1"},
        {"dir": "out", "src": "n0", "dest": "lin-kv"},
        {"dir": "in", "src": "lin-kv", "dest": "n0"},
        {"dir": "out", "src": "n0", "dest": "c1"},
        {"dir": "malformed", "node": "n0"},
    ]
    controller = {"clients": {"sent": 2, "received": 2}, "services": {"sent": 1, "received": 1}}
    s = network_stats(entries, client_ops=1, controller=controller)
    assert s["clients"] == {"send-count": 4, "recv-count": 4, "msg-count": 4}
    assert s["servers"] == {"send-count": 4, "recv-count": 3, "msg-count": 4, "msgs-per-op": 4.0}
    assert s["all"] == {"send-count": 8, "recv-count": 7, "msg-count": 8, "msgs-per-op": 8.0}
    assert s["services"] == {"send-count": 2, "recv-count": 2}
    assert s["malformed-by-node"] == {"n0": 1}


def test_topologies() -> None:
    ids = [f"n{i}" for i in range(5)]
    assert topology(ids, "line")["n2"] == ["n1", "n3"]
    assert topology(ids, "total")["n0"] == ["n1", "n2", "n3", "n4"]
    assert topology(ids, "tree2")["n0"] == ["n1", "n2"]
    assert topology(ids, "tree") == topology(ids, "tree2")
    # Maelstrom's grid: 3 wide (n0 n1 n2 / n3 n4), neighbours below, above, right, left
    grid = topology(ids, "grid")
    assert grid["n0"] == ["n3", "n1"] and grid["n4"] == ["n1", "n3"]
    assert grid["n1"] == ["n4", "n2", "n0"]
    assert topology(ids, "none")["n0"] == []
    assert topology(["n0"], "line") == {}  # Maelstrom: no line of one node
    assert topology(["n0"], "grid") == {"n0": []}


def test_relay_delays_peer_messages_as_asked(tmp_path: Path) -> None:
    """--latency 300 constant: a datagram to a peer leaves the relay 0.3 s after the node
    wrote it (the peer here is a plain UDP socket standing in for another relay)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5.0)
        port = free_port()
        argv = [sys.executable, RELAY, "--id", "n0", "--port", str(port), "--bind", "127.0.0.1",
                "--peers", f"n1=127.0.0.1:{peer.getsockname()[1]}", "--log",
                str(tmp_path / "m.jsonl"), "--latency", "300", "--", sys.executable,
                str(NODES / "counter.py")]  # fmt: skip
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            net = Network({"n1": "n0"})
            link = net.add_link("n1", "127.0.0.1", port)
            link.connect(timeout=10.0)
            body = {"type": "init", "node_id": "n0", "node_ids": ["n0", "n1"]}
            assert net.rpc("n1", "c0", body, 5.0, setup=True)[0]["type"] == "init_ok"
            data, _ = peer.recvfrom(65536)  # the counter node gossips every 0.1 s
            arrived = time.time()
            seq, sent_at, payload = data.split(b" ", 2)  # the relays' numbered datagram
            assert int(seq) == 1 and json.loads(payload)["body"]["type"] == "state"
            deadline = time.monotonic() + 5  # the log is flushed every 0.2 s
            sent: list[float] = []
            while not sent and time.monotonic() < deadline:
                time.sleep(0.05)
                sent = [
                    json.loads(x)["t"]
                    for x in (tmp_path / "m.jsonl").read_text().splitlines()
                    if '"dest": "n1"' in x
                ]
            assert arrived - sent[0] >= 0.28, arrived - sent[0]
            assert float(sent_at) - sent[0] >= 0.28  # it left the relay that much later
            net.close()
        finally:
            proc.kill()
            proc.wait(timeout=10)


def test_relay_counts_datagrams_that_never_arrived(tmp_path: Path) -> None:
    """Datagrams between relays are numbered per peer: a gap is logged as `lost`, with the
    send times that bound it, and the numbered header never reaches the node."""
    node = LoopbackNode(tmp_path, [sys.executable, str(NODES / "echo.py")])
    try:
        assert node.init()["type"] == "init_ok"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            for seq in (1, 2, 5, 6):
                msg = {"src": "n1", "dest": "n0", "body": {"type": "echo", "echo": seq,
                                                           "msg_id": seq}}  # fmt: skip
                head = b"%d %.6f " % (seq, 1000.0 + seq)
                peer.sendto(head + json.dumps(msg).encode(), ("127.0.0.1", node.port))
        deadline = time.monotonic() + 5
        lost: list[dict] = []
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
            lost = [json.loads(x) for x in node.log.read_text().splitlines() if '"lost"' in x]
        assert len(lost) == 1, lost
        assert lost[0]["count"] == 2 and lost[0]["sent_after"] == 1002.0
        assert lost[0]["sent_before"] == 1005.0
        delivered = [json.loads(x) for x in node.log.read_text().splitlines() if '"in"' in x]
        assert sum(1 for e in delivered if e.get("src") == "n1") == 4  # parsed: header gone
    finally:
        node.close()


def test_losses_outside_faults_are_told_apart_and_distrust_a_failed_verdict() -> None:
    entries = [
        {"dir": "lost", "node": "n0", "peer": "n1", "count": 3, "sent_after": 10.0,
         "sent_before": 10.5},  # inside the partition window
        {"dir": "lost", "node": "n0", "peer": "n2", "count": 2, "sent_after": 30.0,
         "sent_before": 30.2},  # outside: an overloaded machine
    ]  # fmt: skip
    s = network_stats(entries, client_ops=10, fault_windows=[(9.0, 20.0)])
    assert s["lost"]["during-faults"] == 3 and s["lost"]["outside-faults"] == 2
    assert s["lost"]["outside-examples"][0]["from"] == "n2"


def test_a_failed_verdict_on_untrustworthy_ground_is_unknown() -> None:
    from dsjepsen.harness.phases import distrust

    facts = {"untrustworthy": "3 message(s) between nodes were lost outside every fault"}
    failed = {"valid": False, "reason": "broadcast: 1 lost"}
    distrust(failed, facts)
    assert failed["valid"] == "unknown" and failed["reason"].startswith("not trusted: 3 message")
    assert "broadcast: 1 lost" in failed["reason"]
    passed = {"valid": True, "reason": None}
    distrust(passed, facts)
    assert passed["valid"] is True  # a pass is not made doubtful by lost messages
    failed = {"valid": False, "reason": "x"}
    distrust(failed, {"net": {}})
    assert failed["valid"] is False
