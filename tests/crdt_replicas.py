"""Real crdt-kv replicas on 127.0.0.1 for tests, joined by links the test can cut and heal.

Each node reaches each peer through its own small TCP relay (`Link`): cutting it resets every
connection through it and refuses new ones, which is what a partition looks like to gossip
(faster than iptables' silent drops, and needs no root). `Replicas` records every op it runs
through the real client as a history the real checkers can judge.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dsjepsen.checkers.base import CheckContext
from dsjepsen.history import History, Op
from dsjepsen.targets.contract_client import ContractClient

SERVER = [sys.executable, "-m", "dsjepsen.targets.crdt_kv.server"]
GOSSIP_MS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Link:
    """A TCP relay from one replica to a peer that the test can cut and heal."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = True
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=1.0)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:  # checked and registered at once: a cut cannot slip in between
                if self.up:
                    self._conns |= {client, upstream}
            if not self.up or client not in self._conns:
                _reset(client)
                _reset(upstream)
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _reset(s)

    def cut(self) -> None:
        with self._lock:
            self.up = False
            conns, self._conns = self._conns, set()
        for s in conns:
            _reset(s)

    def heal(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.sock.close()


def _reset(s: socket.socket) -> None:
    """Abort a connection: shutdown first, which also wakes a relay thread blocked reading it
    (a bare close from another thread would leave the connection open underneath)."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


class Replicas:
    """n crdt-kv processes on loopback, each reaching each peer through its own Link."""

    def __init__(self, tmp: Path, n: int, *extra: str, gossip_ms: int = GOSSIP_MS):
        self.tmp = tmp
        self.names = [f"n{i + 1}" for i in range(n)]
        self.ports = {name: free_port() for name in self.names}
        self.links = {(a, b): Link(self.ports[b]) for a in self.names for b in self.names if a != b}
        self.extra = [*extra, "--gossip-interval", str(gossip_ms)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.history: list[Op] = []
        self._clients: dict[str, ContractClient] = {}
        self._t0 = time.monotonic_ns()
        self._process = 0
        for name in self.names:
            self.start(name)

    def start(self, name: str, data: str | None = None) -> None:
        peers = ",".join(
            f"{b}=127.0.0.1:{self.links[(name, b)].port}" for b in self.names if b != name
        )
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        argv = [*SERVER, "--id", name, "--listen", f"127.0.0.1:{self.ports[name]}"]
        argv += ["--peers", peers, "--data-dir", str(self.tmp / (data or name)), *self.extra]
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} never listened") from None
                time.sleep(0.02)

    def kill(self, name: str) -> None:
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        c = self._clients.pop(name, None)
        if c is not None:
            c.close()

    def partition(self, side: list[str]) -> None:
        for (a, b), link in self.links.items():
            if (a in side) != (b in side):
                link.cut()

    def heal(self) -> None:
        for link in self.links.values():
            link.heal()

    def client(self, name: str) -> ContractClient:
        c = self._clients.get(name)
        if c is None:
            c = self._clients[name] = ContractClient(
                "127.0.0.1", self.ports[name], timeout=2.0, node=name
            )
        return c

    def invoke(self, name: str, f: str, key: Any, value: Any = None) -> Op:
        """Run one op through a node, recording invocation and completion in self.history."""
        self._process += 1
        inv = Op(0, 0, self._process, "invoke", f, value, key=key, node=name)
        self._record(inv)
        done = self.client(name).invoke(inv)
        self._record(done)
        return done

    def _record(self, op: Op) -> None:
        op.index = len(self.history)
        op.time = time.monotonic_ns() - self._t0
        self.history.append(Op(**{s: getattr(op, s) for s in Op.__slots__}))

    def read_everywhere(self, f: str, key: Any) -> dict[str, Any]:
        return {n: self.invoke(n, f, key).value for n in self.names}

    def until_agree(self, f: str, key: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Final reads in rounds until every node answers the same (or timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.read_everywhere(f, key)
            norm = {repr(sorted(v)) if isinstance(v, list) else repr(v) for v in got.values()}
            if len(norm) == 1 or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for link in self.links.values():
            link.close()


@contextmanager
def replica_sets(tmp_path: Path) -> Iterator[Callable[..., Replicas]]:
    """`make(n, *server_args) -> Replicas`, each set in its own directory; all of them are
    killed (and their links closed) on exit."""
    made: list[Replicas] = []

    def make(n: int, *extra: str, **kw: Any) -> Replicas:
        d = tmp_path / f"replicas{len(made)}"
        d.mkdir(parents=True)
        r = Replicas(d, n, *extra, **kw)
        made.append(r)
        return r

    try:
        yield make
    finally:
        for r in made:
            r.close()


def judge(r: Replicas, final_from: int, healed_at: int, checkers: list[Any]) -> dict[str, Any]:
    h = History(r.history)
    h.validate()
    ctx = CheckContext(final_from_index=final_from, healed_at=healed_at, consistency="eventual")
    return {c.name: c.check(h, ctx) for c in checkers}


def now_ns(r: Replicas) -> int:
    return time.monotonic_ns() - r._t0
