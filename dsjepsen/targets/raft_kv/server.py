"""raft-kv server entry point: command line, HTTP routes, and the mapping of Raft outcomes to
status codes (the contract is docs/http-kv-contract.md).

    python -m dsjepsen.targets.raft_kv.server --id n1 --listen 10.0.0.1:7070 \
        --peers n2=10.0.0.2:7070,n3=10.0.0.3:7070 --data-dir /var/lib/raft-kv [--bug NAME ...]

Standard library only: the harness copies this package to nodes that have nothing but python3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any
from urllib.parse import unquote

from .bugs import READ_MODES
from .httpio import NotSent, PeerPool, ProtocolError, Request, Response, serverkit
from .kv import ABSENT, READ, validate_txn
from .node import BUGS, Config, Outcome, RaftNode
from .storage import EXIT_CORRUPT, CorruptLog, Storage
from .txn import TxnExecutor

ABSENT_BODY = {"error": "not found"}


def build_parser() -> argparse.ArgumentParser:
    p = serverkit.parser(
        "raft-kv",
        "Reference Raft key-value server (dsjepsen).",
        "directory for term, vote and log",
        BUGS,
    )
    p.add_argument("--advertise", help="HOST:PORT others reach us at (default: --listen)")
    p.add_argument(
        "--read-mode",
        choices=READ_MODES,
        default="linearizable",
        help="linearizable: reads confirm leadership with a quorum (ReadIndex); "
        "sticky-follower: each node answers reads from its own applied state and answers a "
        "write only once it has applied it itself (sequentially consistent, not linearizable)",
    )
    p.add_argument("--election-timeout", type=float, default=500.0, metavar="MS")
    p.add_argument("--heartbeat", type=float, default=50.0, metavar="MS")
    p.add_argument("--request-timeout", type=float, default=1.0, metavar="S")
    return p


FORWARDED = "x-raft-forwarded"
#: the server's logger (serverkit configures it: --verbose for debug lines)
log = logging.getLogger("raft-kv")


class Server:
    """HTTP front: the client contract, the Raft RPCs, and forwarding from followers.

    A follower that knows the leader forwards client requests to it (once: a forwarded request
    is never forwarded again), so every node's clients can read and write. The forward's outcome
    is reported honestly: 503 if the request certainly never reached the leader, 504 for a
    write the leader may have received but did not answer.
    """

    def __init__(
        self,
        node: RaftNode,
        addresses: dict[str, str],
        forward_timeout: float,
        read_mode: str = "linearizable",
    ):
        self.node = node
        self.addresses = addresses
        self.forward_timeout = forward_timeout
        self.read_mode = read_mode
        self.txns = TxnExecutor(node)
        self._pools: dict[str, PeerPool] = {}

    def _not_leader(self, error: str = "not leader") -> Response:
        leader = self.node.leader_id if self.node.leader_id != self.node.id else None
        return Response(
            503,
            {"error": error, "leader": leader, "leader_addr": self.addresses.get(leader or "")},
        )

    async def handle(self, req: Request) -> Response:
        try:
            resp = await self._route(req)
        except (ValueError, KeyError, TypeError) as e:
            resp = Response(400, {"error": f"bad request: {e}"})
        if req.path.startswith(("/kv/", "/lock/")) or req.path == "/txn":
            # Which node served the request (the leader, for one forwarded to it), for the
            # client to record with the completion; and one debug line per client request,
            # so that the report's log windows show what each node served.
            if isinstance(resp.payload, dict) and resp.status != 503:
                resp.payload.setdefault("node", self.node.id)
            via = req.headers.get(FORWARDED)
            log.debug(
                "client %s %s -> %d%s",
                req.method,
                req.path,
                resp.status,
                f" (forwarded by {via})" if via else "",
            )
        return resp

    async def _route(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/kv/"):
            if self._should_forward(req):
                return await self._forward(req)
            rest = path[4:]
            if rest.endswith("/cas"):
                if req.method != "POST":
                    return Response(405, {"error": "use POST for /kv/{key}/cas"})
                return await self._cas(unquote(rest[:-4]), req.json(), FORWARDED in req.headers)
            key = unquote(rest)
            if req.method == "GET":
                return await self._get(key)
            if req.method == "PUT":
                return await self._put(key, req.json(), FORWARDED in req.headers)
            return Response(405, {"error": "use GET or PUT on /kv/{key}"})
        if path == "/txn":
            if req.method != "POST":
                return Response(405, {"error": "use POST for /txn"})
            return await self._txn(req)
        if path in ("/lock/acquire", "/lock/release"):
            if req.method != "POST":
                return Response(405, {"error": f"use POST for {path}"})
            if self._should_forward(req):
                return await self._forward(req)
            if path == "/lock/acquire":
                return await self._lock_acquire(req.json())
            return await self._lock_release(req.json())
        if path == "/status" and req.method == "GET":
            return Response(200, self.node.status())
        if path == "/raft/append" and req.method == "POST":
            return Response(200, self.node.on_append(req.json()))
        if path == "/raft/vote" and req.method == "POST":
            return Response(200, self.node.on_vote(req.json()))
        return Response(400, {"error": f"no endpoint {req.method} {path}"})

    @property
    def local_reads(self) -> bool:
        """Reads answered from this node's applied state, with no leadership check: the
        stale-read bug, and the sticky-follower read mode (which, unlike the bug, also makes
        each write wait until this node has applied it: a session guarantee)."""
        return "stale-read" in self.node.bugs or self.read_mode == "sticky-follower"

    def _should_forward(self, req: Request) -> bool:
        if req.method == "GET" and self.local_reads:
            return False
        return self.node.role != "leader" and FORWARDED not in req.headers

    async def _forward(self, req: Request) -> Response:
        leader = self.node.leader_id
        addr = self.addresses.get(leader or "")
        if leader is None or leader == self.node.id or addr is None:
            return self._not_leader("not leader, and no leader known")
        pool = self._pools.get(addr)
        if pool is None:
            host, _, port = addr.rpartition(":")
            pool = self._pools[addr] = PeerPool(host, int(port))
        started = asyncio.get_running_loop().time()
        try:
            status, payload = await pool.request(
                req.method, req.path, req.body, self.forward_timeout, {FORWARDED: self.node.id}
            )
        except NotSent as e:
            return self._not_leader(f"leader {leader} unreachable: {e}")
        except (OSError, TimeoutError, ValueError, EOFError, ProtocolError) as e:
            if req.method == "GET":
                return self._not_leader(f"leader {leader} did not answer the read: {e!r}")
            return Response(
                504, {"error": f"forwarded to leader {leader}, no answer: outcome unknown"}
            )
        if isinstance(payload, dict):
            index = payload.pop("index", None)
            if self.read_mode == "sticky-follower" and status == 200 and isinstance(index, int):
                left = self.forward_timeout - (asyncio.get_running_loop().time() - started)
                if not await self.node.wait_applied(index, max(0.0, left)):
                    return Response(
                        504, {"error": f"committed at index {index}, not yet applied here"}
                    )
        return Response(status, payload)

    async def _txn(self, req: Request) -> Response:
        """One transaction (docs/http-kv-contract.md, `POST /txn`): 200 with the micro-ops
        and what each read returned, 503 when it certainly did not happen, 409 when it was
        aborted (only under txn-read-uncommitted), 504 when its outcome is unknown."""
        body = req.json()
        if not isinstance(body, dict) or "txn" not in body:
            return Response(400, {"error": 'body must be {"txn": [[f, key, value], ...]}'})
        txn = validate_txn(body["txn"])
        forwarded = FORWARDED in req.headers
        reads = body.get("reads") if forwarded else None
        if reads is None and "txn-stale-snapshot" in self.node.bugs:
            # BUG txn-stale-snapshot: reads from this node's state, outside the log
            reads = self.txns.local_reads(txn)
            if all(mop[0] == READ for mop in txn):
                return Response(
                    200, {"txn": [[f, k, r] for (f, k, _), r in zip(txn, reads, strict=True)]}
                )
            if self.node.role != "leader":
                body = json.dumps({"txn": txn, "reads": reads}).encode()
                return await self._forward(Request(req.method, req.path, req.headers, body))
        elif self._should_forward(req):
            return await self._forward(req)
        outcome, result, index = await self.txns.run(txn, reads)
        if outcome == "conflict":
            return Response(409, {"error": "aborted: write-write conflict with another txn"})
        if outcome == Outcome.OK and result[0] == "invalid":  # nothing of it applied
            return Response(400, {"error": f"rejected: {result[1]}"})
        written = self._written((outcome, result, index), forwarded)
        if written.status == 200 and isinstance(written.payload, dict):
            written.payload["txn"] = written.payload.pop("value")
        return written

    async def _lock_acquire(self, body: Any) -> Response:
        """A lease on a named lock (docs/locks.md, raft_kv/lease.py): 200 {"token"} when
        granted (the grant's log index; null under lease-no-fencing), 409 while another holds
        an unexpired lease, 503 when it certainly was not granted, 504 when it may have been."""
        if not isinstance(body, dict) or not isinstance(body.get("holder"), str):
            return Response(400, {"error": 'body must be {"lock", "holder", "lease-ms"}'})
        ttl = body.get("lease-ms")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= 86_400_000:
            return Response(400, {"error": "lease-ms must be an integer of 1..86400000"})
        lock, holder = str(body.get("lock", "lock")), body["holder"]
        free, cur = self.node.kv.leases.free_for(lock, holder)
        if not free:
            return Response(409, {"error": "held", "holder": cur.holder if cur else None})
        cmd = {
            "op": "lock-grant",
            "lock": lock,
            "holder": holder,
            "ttl_ms": ttl,
            "prev": cur.token if cur is not None else None,
        }
        outcome, result, index = await self.node.propose(cmd)
        if outcome == Outcome.OK and result[0] == "mismatch":
            return Response(409, {"error": "held", "holder": result[1]})
        written = self._written((outcome, result, index))
        if written.status == 200:
            # BUG lease-no-fencing: the grant's token is not handed out
            token = None if "lease-no-fencing" in self.node.bugs else result[1]
            return Response(200, {"token": token})
        return written

    async def _lock_release(self, body: Any) -> Response:
        """Give a lease back: 200 when it was this holder's, 409 when it was not (any more)."""
        if not isinstance(body, dict) or not isinstance(body.get("holder"), str):
            return Response(400, {"error": 'body must be {"lock", "holder", "token"}'})
        cmd = {
            "op": "lock-release",
            "lock": str(body.get("lock", "lock")),
            "holder": body["holder"],
            "token": body.get("token"),
        }
        outcome, result, index = await self.node.propose(cmd)
        if outcome == Outcome.OK and result[0] == "mismatch":
            return Response(409, {"error": "not the holder", "holder": result[1]})
        written = self._written((outcome, result, index))
        return Response(200, {}) if written.status == 200 else written

    async def _get(self, key: str) -> Response:
        outcome = (
            Outcome.OK if self.read_mode == "sticky-follower" else await self.node.read_barrier()
        )
        if outcome != Outcome.OK:
            return self._not_leader("not leader, or leadership not confirmed by a quorum")
        value = self.node.kv.get(key)
        if value is ABSENT:
            return Response(404, ABSENT_BODY)
        return Response(200, {"value": value})

    async def _put(self, key: str, body: Any, forwarded: bool) -> Response:
        if not isinstance(body, dict) or "value" not in body:
            return Response(400, {"error": 'body must be {"value": ...}'})
        cmd = {"op": "put", "key": key, "value": body["value"]}
        return self._written(await self.node.propose(cmd), forwarded)

    async def _cas(self, key: str, body: Any, forwarded: bool) -> Response:
        if not isinstance(body, dict) or "from" not in body or "to" not in body:
            return Response(400, {"error": 'body must be {"from": ..., "to": ...}'})
        cmd = {"op": "cas", "key": key, "from": body["from"], "to": body["to"]}
        return self._written(await self.node.propose(cmd), forwarded)

    def _written(self, got: tuple[str, Any, int], forwarded: bool = False) -> Response:
        """The contract's answer to a write; a forwarded one also carries its log index (the
        forwarding node waits for it in sticky-follower mode, and drops it)."""
        outcome, result, index = got
        if outcome == Outcome.NOT_LEADER:
            return self._not_leader()
        if outcome == Outcome.LOST:
            return self._not_leader("superseded: another entry was committed in its place")
        if outcome == Outcome.TIMEOUT:
            return Response(504, {"error": "timed out waiting for commit; outcome unknown"})
        verdict, value = result
        if verdict == "absent":
            return Response(404, ABSENT_BODY)
        if verdict == "mismatch":
            return Response(409, {"error": "current value differs", "value": value})
        return Response(200, {"value": value, "index": index} if forwarded else {"value": value})


async def amain(args: argparse.Namespace) -> None:
    host, port, peers = serverkit.addresses(args, "raft-kv")
    advertise = args.advertise or args.listen
    log = logging.getLogger("raft-kv")
    cfg = Config(
        node_id=args.id,
        advertise=advertise,
        peers=peers,
        election_timeout=args.election_timeout / 1000.0,
        heartbeat=args.heartbeat / 1000.0,
        request_timeout=args.request_timeout,
        rpc_timeout=max(args.election_timeout / 2000.0, 2 * args.heartbeat / 1000.0),
        bugs=frozenset(args.bug),
    )
    try:
        storage = Storage(args.data_dir, fsync="no-fsync" not in cfg.bugs)
    except CorruptLog as e:  # never serve damaged data, never forget acknowledged entries
        log.error("refusing to start: %s (exit %d)", e, EXIT_CORRUPT)
        sys.exit(EXIT_CORRUPT)
    node = RaftNode(cfg, storage, log)
    addresses = {name: f"{h}:{p}" for name, (h, p) in peers.items()}
    addresses[args.id] = advertise
    forward_timeout = args.request_timeout + max(0.25, args.request_timeout / 2)
    server = Server(node, addresses, forward_timeout, args.read_mode)
    srv = await serverkit.listen(host, port, server.handle)
    node.start()
    log.info(
        "listening on %s:%d, peers %s, reads %s",
        host,
        port,
        args.peers or "(none)",
        args.read_mode,
    )
    await serverkit.until_signalled(srv)
    storage.sync()
    storage.close()


def main(argv: list[str] | None = None) -> int:
    return serverkit.main("raft-kv", build_parser(), BUGS, amain, argv)


if __name__ == "__main__":
    sys.exit(main())
