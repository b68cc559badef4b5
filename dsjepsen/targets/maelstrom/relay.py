"""The relay: runs one Maelstrom node program and is its network.

Standard library only and importing nothing from dsjepsen: on SSH and docker nodes this one file
is uploaded and run with the node's own python3. Why a relay rather than Maelstrom's in-process
simulated network: the node's messages must cross the real network between the node addresses,
so that iptables partitions, packet faults, kills and pauses act on real traffic.

What it does, per node:

- starts the node program (argv after `--`, never through a shell) with its stdin and stdout on
  pipes and its stderr on the relay's own stderr (the daemon log);
- reads the node's stdout line by line. A message to a peer node (`n0`, `n1`, ...) goes out as
  one UDP datagram to that peer's relay, from this node's address to the peer's: a partition
  drops it, as Maelstrom's network drops messages between partitioned nodes (no retransmission
  behind the node's back). A message to a client (`c1`, ...) or a service (`lin-kv`, `seq-kv`,
  `lww-kv`, `lin-tso`) goes to the controller over the TCP connection the controller opened;
  a message to the node itself is delivered back to it;
- delivers to the node's stdin, one line per message, whatever arrives from peers (once the
  node has answered `init`: earlier peer messages wait, so a peer that talks before its
  neighbours are initialised loses nothing) and from the controller (in arrival order);
- logs every message it carries (time, direction, src, dest, type, msg_id, in_reply_to) as one
  JSON line in the message log, for network statistics and a later message diagram;
- reports malformed output (not JSON, not an object, no src / dest / body, an unknown dest) to
  the controller as an event and in the message log, and carries on: a bad line never stops
  the node or the run;
- when the node exits, tells the controller (exit code) and exits with the node's code.

Every datagram to a peer carries a small header before the message, `<seq> <send time> `: a
sequence number per (sending relay, peer) and the wall time it left. The receiving relay strips it
and so knows exactly how many datagrams from each peer never arrived, and when they were sent
(a `lost` entry in its log). Losses while a partition or another fault is on are the fault's;
a loss outside every fault means this machine dropped datagrams (an overloaded receiver's
socket buffer overflowed), which Maelstrom's network never does, and the harness then refuses
to call a failed check a bug (docs/maelstrom.md).

The message log is written in blocks, flushed every FLUSH_EVERY seconds and at exit: a relay
killed with SIGKILL (the kill fault) loses at most that much of its log's tail.

`--latency MS` delays every node-to-node message by MS milliseconds on average, distributed as
`--latency-dist` says (constant, Maelstrom's default; uniform over [0, 2 MS]; exponential),
added here before sending: the relays apply it, so it works on kernels without netem.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from typing import Any

SERVICES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")
#: the largest datagram a message may use (a bigger one is dropped and reported)
MAX_DATAGRAM = 65000
#: longest malformed line kept in an event
SHOWN = 300
#: seconds between flushes of the message log
FLUSH_EVERY = 0.2
#: the UDP receive buffer asked for (as root beyond net.core.rmem_max): bursts of a busy
#: cluster must queue, not overflow
RCVBUF = 16 << 20


def is_client(dest: str) -> bool:
    return len(dest) > 1 and dest[0] == "c" and dest[1:].isdigit()


class Relay:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.peers: dict[str, tuple[str, int]] = {}
        for item in filter(None, args.peers.split(",")):
            name, _, addr = item.partition("=")
            host, _, port = addr.rpartition(":")
            self.peers[name] = (host, int(port))
        self.latency = max(0.0, args.latency) / 1000.0
        self.latency_dist: str = args.latency_dist
        self.by_addr = {addr: name for name, addr in self.peers.items()}
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        #: per peer: the next sequence number expected and the send time of the last one
        self.expect: dict[str, tuple[int, float]] = {}
        self.controller: socket.socket | None = None
        self.controller_lock = threading.Lock()
        #: the node's exit code once it has exited: a controller that connects after that
        #: (a node that dies at startup) is told at once, not left with a closed connection
        self.exit_code: int | None = None
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.initialised = threading.Event()
        self.waiting: list[bytes] = []  # peer messages that arrived before init_ok
        self.waiting_lock = threading.Lock()
        self.delayed: list[tuple[float, int, bytes, tuple[str, int]]] = []
        self.delayed_cv = threading.Condition()
        self.seq = 0
        #: datagrams sent, per peer address: the sequence number of the last one
        self.sent: dict[tuple[str, int], int] = {}
        self.send_lock = threading.Lock()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # SO_RCVBUFFORCE (root): beyond the namespace's rmem_max
            self.udp.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)
        except OSError:
            self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.udp.bind((args.bind, args.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("0.0.0.0", args.port))
        self.tcp.listen(8)
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - argv list, never a shell
                args.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=args.node_cwd or None,
            )
        except OSError as e:
            raise OSError(why_not_started(args.argv[0], e)) from None
        self.say(f"relay {self.id}: node pid {self.proc.pid}: {' '.join(args.argv)}")

    # -- logging --------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        sys.stderr.flush()

    def record(self, direction: str, msg: dict[str, Any] | None, **extra: Any) -> None:
        """One line of the message log. Built by hand: it is written for every message the
        node sends or receives, and json.dumps of a dict per line was a third of the relay's
        time on a busy cluster."""
        parts = [f'{{"t": {time.time():.6f}, "node": {self._q(self.id)}, "dir": "{direction}"']
        if msg is not None:
            body = msg.get("body")
            if not isinstance(body, dict):
                body = {}
            parts.append(
                f', "src": {self._q(msg.get("src"))}, "dest": {self._q(msg.get("dest"))}'
                f', "type": {self._q(body.get("type"))}'
            )
            for k in ("msg_id", "in_reply_to"):
                if k in body:
                    parts.append(f', "{k}": {self._q(body[k])}')
        for k, v in extra.items():
            parts.append(f', "{k}": {self._q(v)}')
        parts.append("}\n")
        line = "".join(parts)
        with self.log_lock:
            self.log.write(line)
            if direction not in ("in", "out"):  # rare and telling: on disk at once
                self.log.flush()

    @staticmethod
    def _q(v: Any) -> str:
        """A JSON value: plain ids and ints written directly, anything else encoded."""
        if type(v) is str and v.isalnum():
            return f'"{v}"'
        if type(v) is int:
            return str(v)
        return json.dumps(v, default=str)

    def flusher(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            self.flush_log()

    def flush_log(self) -> None:
        with self.log_lock:
            try:
                self.log.flush()
            except (OSError, ValueError):
                pass

    # -- to the controller ----------------------------------------------------------------------

    def to_controller(self, obj: dict[str, Any]) -> bool:
        data = (json.dumps(obj) + "\n").encode()
        with self.controller_lock:
            conn = self.controller
            if conn is None:
                return False
            try:
                conn.sendall(data)
                return True
            except OSError:
                self.controller = None
                return False

    def malformed(self, why: str, line: str) -> None:
        shown = line[:SHOWN]
        self.say(f"relay {self.id}: malformed output ({why}): {shown!r}")
        self.record("malformed", None, why=why, line=shown)
        self.to_controller({"event": "malformed", "node": self.id, "why": why, "line": shown})

    # -- to the node ----------------------------------------------------------------------------

    def deliver(self, line: bytes, msg: dict[str, Any] | None) -> None:
        self.record("in", msg)
        self.inbox.put(line)

    def writer(self) -> None:
        """Writes queued lines to the node's stdin; its own thread, so that a node that stops
        reading (paused, busy) never blocks the sockets. Whatever queued up meanwhile goes
        out in one write."""
        stdin = self.proc.stdin
        assert stdin is not None
        inbox = self.inbox
        while (line := inbox.get()) is not None:
            batch = [line.rstrip(b"\n")]
            while len(batch) < 512:
                try:
                    more = inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    inbox.put(None)
                    break
                batch.append(more.rstrip(b"\n"))
            try:
                stdin.write(b"\n".join(batch) + b"\n")
                stdin.flush()
            except (OSError, ValueError):
                return

    # -- from the node --------------------------------------------------------------------------

    def from_node(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        for raw in stdout:
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                msg = json.loads(text)
            except ValueError:
                self.malformed("not JSON", text)
                continue
            if not isinstance(msg, dict):
                self.malformed("not a JSON object", text)
                continue
            dest, body = msg.get("dest"), msg.get("body")
            if not isinstance(dest, str) or not dest:
                self.malformed("no dest", text)
                continue
            if not isinstance(body, dict):
                self.malformed("no body object", text)
                continue
            if not isinstance(msg.get("src"), str):
                self.malformed("no src", text)
                continue
            self.route(msg, text)
            if body.get("type") == "init_ok" and not self.initialised.is_set():
                # peers' messages held until now follow the node's init_ok
                with self.waiting_lock:
                    self.initialised.set()
                    for line in self.waiting:
                        self.deliver(line, _parse(line))
                    self.waiting.clear()

    def route(self, msg: dict[str, Any], text: str) -> None:
        """One well-formed message from the node to where its dest is."""
        dest = msg["dest"]
        line = text.encode()
        if dest == self.id:
            self.record("out", msg)
            self.deliver(line, msg)
        elif dest in self.peers:
            self.record("out", msg)
            self.to_peer(line, self.peers[dest])
        elif is_client(dest) or dest in SERVICES:
            self.record("out", msg)
            if not self.to_controller(msg):
                self.record("drop", msg, why="no controller connection")
        else:
            self.malformed(f"unknown dest {dest!r}", text)

    def to_peer(self, line: bytes, addr: tuple[str, int]) -> None:
        if len(line) > MAX_DATAGRAM:
            self.malformed(f"message of {len(line)} bytes is over the {MAX_DATAGRAM}", "")
            return
        if self.latency <= 0:
            self.send_datagram(line, addr)
            return
        if self.latency_dist == "exponential":
            delay = random.expovariate(1.0 / self.latency)
        elif self.latency_dist == "uniform":
            delay = random.uniform(0.0, 2.0 * self.latency)
        else:
            delay = self.latency
        due = time.monotonic() + delay
        with self.delayed_cv:
            self.seq += 1
            heapq.heappush(self.delayed, (due, self.seq, line, addr))
            self.delayed_cv.notify()

    def send_datagram(self, line: bytes, addr: tuple[str, int]) -> None:
        """One datagram to a peer, numbered (see the module docstring)."""
        with self.send_lock:
            seq = self.sent[addr] = self.sent.get(addr, 0) + 1
            head = b"%d %.6f " % (seq, time.time())
            try:
                self.udp.sendto(head + line, addr)
                return
            except OSError as e:  # unreachable, refused: a lossy network drops it
                why = str(e)
        self.record("drop", _parse(line), why=why)

    def delayer(self) -> None:
        while True:
            with self.delayed_cv:
                while not self.delayed or self.delayed[0][0] > time.monotonic():
                    wait = self.delayed[0][0] - time.monotonic() if self.delayed else None
                    self.delayed_cv.wait(wait)
                _, _, line, addr = heapq.heappop(self.delayed)
            self.send_datagram(line, addr)

    # -- from the network -----------------------------------------------------------------------

    def from_peers(self) -> None:
        initialised = self.initialised
        while True:
            try:
                data, addr = self.udp.recvfrom(MAX_DATAGRAM + 1024)
            except OSError:
                return
            data = self.count(data, addr)
            msg = _parse(data)
            if msg is None:
                continue
            if not initialised.is_set():
                with self.waiting_lock:
                    if not initialised.is_set():
                        self.waiting.append(data)
                        continue
            self.deliver(data, msg)

    def count(self, data: bytes, addr: tuple[str, int]) -> bytes:
        """Strip a datagram's header; log a `lost` entry when sequence numbers from that
        peer skipped some (they were sent between the last one received and this one)."""
        first = data.find(b" ")
        second = data.find(b" ", first + 1)
        try:
            seq, sent_at = int(data[:first]), float(data[first + 1 : second])
        except ValueError:
            return data  # not numbered: taken as it is
        peer = self.by_addr.get(addr, f"{addr[0]}:{addr[1]}")
        expected, last_at = self.expect.get(peer, (seq, sent_at))
        if seq > expected:
            self.record(
                "lost", None, peer=peer, count=seq - expected, sent_after=last_at,
                sent_before=sent_at,
            )  # fmt: skip
        if seq >= expected or seq == 1:  # seq 1 below what was expected: a restarted peer
            self.expect[peer] = (seq + 1, sent_at)
        return data[second + 1 :]

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.controller_lock:
                old, self.controller = self.controller, conn
                exited = self.exit_code
            if old is not None:
                _close(old)
            if exited is not None:
                self.to_controller({"event": "exit", "node": self.id, "code": exited})
            threading.Thread(target=self.from_controller, args=(conn,), daemon=True).start()

    def from_controller(self, conn: socket.socket) -> None:
        with conn.makefile("rb") as f:
            try:
                for line in f:
                    msg = _parse(line)
                    if msg is not None:
                        self.deliver(line, msg)
            except OSError:
                pass
        with self.controller_lock:
            if self.controller is conn:
                self.controller = None

    def run(self) -> int:
        threads = (self.writer, self.from_node, self.from_peers, self.accept, self.delayer,
                   self.flusher)  # fmt: skip
        for fn in threads:
            threading.Thread(target=fn, daemon=True).start()
        code = self.proc.wait()
        time.sleep(0.05)  # let the stdout reader finish the node's last lines
        self.say(f"relay {self.id}: node exited with code {code}")
        self.record("exit", None, code=code)
        self.flush_log()
        with self.controller_lock:
            self.exit_code = code
        self.to_controller({"event": "exit", "node": self.id, "code": code})
        time.sleep(0.05)  # a controller connecting just now still hears why (see accept)
        return code if code >= 0 else 128 - code


def why_not_started(program: str, e: OSError) -> str:
    """What to tell the user when the node program cannot be executed: the kernel says
    "No such file or directory" about a script whose #! interpreter is missing, which names
    the wrong file; name the interpreter instead."""
    if isinstance(e, FileNotFoundError) and os.path.isfile(program):
        try:
            with open(program, "rb") as fh:
                first = fh.readline(512).decode("utf-8", "replace").strip()
        except OSError:
            first = ""
        if first.startswith("#!"):
            interp = (first[2:].split() or ["?"])[0]
            return f"the node program {program} needs {interp} ({first}), which does not exist"
    if isinstance(e, FileNotFoundError):
        return f"no such node program: {program}"
    if isinstance(e, PermissionError):
        return f"the node program {program} is not executable (or not readable)"
    return f"cannot run the node program {program}: {e}"


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def _close(conn: socket.socket) -> None:
    try:
        conn.close()
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="relay for one Maelstrom node")
    p.add_argument("--id", required=True, help="this node's Maelstrom id (n0, n1, ...)")
    p.add_argument("--port", type=int, required=True, help="UDP (peers) and TCP (controller)")
    p.add_argument("--bind", default="0.0.0.0", help="address peers' datagrams arrive on")
    p.add_argument("--peers", default="", help="other nodes as id=address:port,...")
    p.add_argument("--log", required=True, help="message log (JSON lines, appended)")
    p.add_argument("--latency", type=float, default=0.0, help="mean node-to-node delay, ms")
    p.add_argument(
        "--latency-dist", choices=("constant", "uniform", "exponential"), default="constant"
    )
    p.add_argument("--node-cwd", default="", help="directory the node program runs in")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the node program's argv")
    args = p.parse_args(argv)
    if args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    if not args.argv:
        p.error("no node program after --")
    try:
        relay = Relay(args)
    except OSError as e:
        sys.stderr.write(f"relay {args.id}: cannot start: {e}\n")
        return 3
    code = relay.run()
    os._exit(code)  # daemon threads may be blocked in socket calls


if __name__ == "__main__":
    sys.exit(main())
