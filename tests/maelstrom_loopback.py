"""A real relay and node program on loopback, for tests that need one node without a
cluster: the relay is started as on a node, the controller's Network talks to it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from dsjepsen.targets.maelstrom.net import Network
from dsjepsen.targets.maelstrom.target import RELAY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackNode:
    """One real relay + node program on 127.0.0.1, and the controller's Network to it."""

    def __init__(self, tmp: Path, argv: list[str], peers: str = "", mid: str = "n0") -> None:
        self.port = free_port()
        self.log = tmp / f"{mid}.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, RELAY, "--id", mid, "--port", str(self.port), "--bind",
             "127.0.0.1", "--peers", peers, "--log", str(self.log), "--", *argv],
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.net = Network({"n1": mid})
        self.link = self.net.add_link("n1", "127.0.0.1", self.port)
        self.link.connect(timeout=10.0)

    def init(self) -> dict | None:
        body = {"type": "init", "node_id": "n0", "node_ids": ["n0"]}
        reply, _, _ = self.net.rpc("n1", "c0", body, 5.0, setup=True)
        self.link.ready = reply is not None and reply.get("type") == "init_ok"
        return reply

    def close(self) -> None:
        self.net.close()
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()
