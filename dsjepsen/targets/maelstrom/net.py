"""The controller's side of the Maelstrom network: one TCP link per node's relay.

Clients' requests go down a node's link; whatever the relay sends up is either a Maelstrom
message (a reply to a client, a request to a service) or a relay event (malformed output, the
node exited). Replies are matched to waiting requests by `in_reply_to` only (a node need not
give its replies a `msg_id`); a reply to a request that already timed out is counted as late,
a reply to a msg_id never sent is malformed output: logged with the node and the line, counted,
shown in the results, never fatal.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.targets.maelstrom.services import NAMES as SERVICE_NAMES
from dsjepsen.targets.maelstrom.services import Services

log = logging.getLogger("dsjepsen.maelstrom")

#: malformed lines logged one by one (all are counted)
LOGGED_MALFORMED = 20
#: timed-out msg_ids remembered to tell a late reply from a reply to nothing
LATE_MEMORY = 100_000


@dataclass
class _Pending:
    node: str
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    lost: str | None = None  # why no reply can come (link lost, node exited)


class RelayLink:
    """The controller's TCP connection to one node's relay, and its reader thread."""

    def __init__(self, net: Network, node: str, address: str, port: int) -> None:
        self.net = net
        self.node = node
        self.address = address
        self.port = port
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        self.exit_code: int | None = None
        #: the node answered init: clients may talk to it (a restarted node must not see a
        #: client's request before its init)
        self.ready = False

    @property
    def up(self) -> bool:
        return self.sock is not None

    def connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection((self.address, self.port), timeout=2.0)
            except OSError as e:
                last = e
                time.sleep(0.05)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.exit_code = None
            self.sock = sock
            threading.Thread(
                target=self._read, args=(sock,), name=f"maelstrom-{self.node}", daemon=True
            ).start()
            return
        raise OSError(f"relay at {self.address}:{self.port} not reachable: {last}")

    def send(self, msg: dict[str, Any]) -> bool:
        data = (json.dumps(msg) + "\n").encode()
        with self.lock:
            sock = self.sock
            if sock is None:
                return False
            try:
                sock.sendall(data)
                return True
            except OSError:
                self._drop(sock)
                return False

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                self._drop(self.sock)

    def _drop(self, sock: socket.socket) -> None:
        if self.sock is sock:
            self.sock = None
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _read(self, sock: socket.socket) -> None:
        try:
            with sock.makefile("rb") as f:
                for raw in f:
                    try:
                        obj = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        self.net.on_message(self, obj)
        except (OSError, ValueError):
            pass
        with self.lock:
            if self.sock is sock:
                self.sock = None
        self.net.link_lost(self)


class Network:
    """All links, the services, msg_ids, requests waiting for replies, malformed output."""

    def __init__(self, ids: dict[str, str], seed: int | None = None) -> None:
        #: cluster node name -> Maelstrom node id (n1 -> n0, ...)
        self.ids = dict(ids)
        self.names = {mid: name for name, mid in ids.items()}
        self.links: dict[str, RelayLink] = {}
        self.services = Services(seed)
        self.msg_ids = itertools.count(1)
        self.pending: dict[int, _Pending] = {}
        self.late: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.lock = threading.Lock()
        self.malformed: list[dict[str, Any]] = []
        self.malformed_count: collections.Counter[str] = collections.Counter()
        self.late_replies = 0
        #: what the controller itself sent and received, the other half of Maelstrom's
        #: send / recv counts (the relays log the nodes' half): requests of clients (and the
        #: harness's init / topology) and their replies; calls to services and their replies
        self.client_messages = {"sent": 0, "received": 0}
        self.service_messages = {"sent": 0, "received": 0}

    # -- links ----------------------------------------------------------------------------------

    def add_link(self, node: str, address: str, port: int) -> RelayLink:
        old = self.links.get(node)
        if old is not None:
            old.close()
        link = self.links[node] = RelayLink(self, node, address, port)
        return link

    def close(self) -> None:
        for link in list(self.links.values()):
            link.close()

    def link_lost(self, link: RelayLink) -> None:
        self._fail_pending(link.node, f"connection to the relay of {link.node} lost")

    def _fail_pending(self, node: str, why: str) -> None:
        with self.lock:
            waiting = [p for p in self.pending.values() if p.node == node]
        for p in waiting:
            p.lost = why
            p.done.set()

    # -- requests -------------------------------------------------------------------------------

    def rpc(
        self, node: str, src: str, body: dict[str, Any], timeout: float, *, setup: bool = False
    ) -> tuple[dict[str, Any] | None, str | None, bool]:
        """Send body from `src` to the node; (reply body, why none, whether it was sent).
        Only the harness's own setup messages (`init`, `topology`) may go to a node that is
        not ready for clients yet."""
        link = self.links.get(node)
        if link is not None and not link.ready and not setup:
            return None, f"node {node} is starting (no init_ok yet)", False
        msg_id = next(self.msg_ids)
        body = {**body, "msg_id": msg_id}
        pending = _Pending(node)
        with self.lock:
            self.pending[msg_id] = pending
        try:
            if link is None or not link.send({"src": src, "dest": self.ids[node], "body": body}):
                code = link.exit_code if link is not None else None
                why = f"node {node} is down" + (f" (exited {code})" if code is not None else "")
                return None, why, False
            with self.lock:
                self.client_messages["sent"] += 1
            if not pending.done.wait(timeout):
                return None, f"no reply from {node} within {timeout:g}s", True
            return pending.reply, pending.lost, True
        finally:
            with self.lock:
                self.pending.pop(msg_id, None)
                if pending.reply is None:
                    self.late[msg_id] = None
                    while len(self.late) > LATE_MEMORY:
                        self.late.popitem(last=False)

    # -- what relays send up --------------------------------------------------------------------

    def on_message(self, link: RelayLink, obj: dict[str, Any]) -> None:
        event = obj.get("event")
        if event == "malformed":
            self.note_malformed(link.node, str(obj.get("why")), str(obj.get("line", "")))
            return
        if event == "exit":
            link.exit_code = obj.get("code") if isinstance(obj.get("code"), int) else -1
            log.warning("node %s (%s) exited with code %s", link.node, self.ids.get(link.node),
                        link.exit_code)  # fmt: skip
            self._fail_pending(link.node, f"node {link.node} exited with code {link.exit_code}")
            return
        dest = obj.get("dest")
        body = obj.get("body") if isinstance(obj.get("body"), dict) else {}
        if dest in SERVICE_NAMES:
            with self.lock:
                self.service_messages["received"] += 1
            reply = self.services.handle(obj)
            if reply is not None and link.send(reply):
                with self.lock:
                    self.service_messages["sent"] += 1
            return
        with self.lock:
            self.client_messages["received"] += 1
        reply_to = body.get("in_reply_to")
        line = json.dumps(obj)
        if not isinstance(reply_to, int) or isinstance(reply_to, bool):
            self.note_malformed(link.node, "message to a client that is not a reply", line)
            return
        with self.lock:
            pending = self.pending.get(reply_to)
            late = pending is None and reply_to in self.late
            if late:
                self.late_replies += 1
        if pending is not None:
            pending.reply = body
            pending.done.set()
        elif not late:
            self.note_malformed(link.node, f"reply to unknown msg_id {reply_to}", line)

    def note_malformed(self, node: str, why: str, line: str) -> None:
        kind = next(
            (k for k in ("unknown dest", "reply to unknown msg_id") if why.startswith(k)), why
        )
        with self.lock:
            self.malformed_count[kind] += 1
            n = sum(self.malformed_count.values())
            if len(self.malformed) < LOGGED_MALFORMED:
                self.malformed.append({"node": node, "why": why, "line": line[:300]})
        if n <= LOGGED_MALFORMED:
            log.warning("node %s (%s): malformed output (%s): %s", node, self.ids.get(node), why,
                        line[:300])  # fmt: skip
        elif n == LOGGED_MALFORMED + 1:
            log.warning("more malformed output: counted, no longer logged one by one")

    def summary(self) -> dict[str, Any]:
        """What the results show about the links: malformed output, late replies, services."""
        with self.lock:
            return {
                "malformed": sum(self.malformed_count.values()),
                "malformed_by_kind": dict(self.malformed_count),
                "malformed_examples": list(self.malformed),
                "late_replies": self.late_replies,
                "client_messages": dict(self.client_messages),
                "service_messages": dict(self.service_messages),
                "service_calls": dict(self.services.calls),
            }
