"""crdt-kv server entry point: command line and HTTP routes (the set and counter endpoints of
docs/http-kv-contract.md, plus gossip between replicas).

    python -m dsjepsen.targets.crdt_kv.server --id n1 --listen 0.0.0.0:7070 \\
        --peers n2=10.0.0.2:7070,n3=10.0.0.3:7070 --data-dir /var/lib/crdt-kv [--bug NAME ...]

Standard library only: the harness copies this package to nodes that have nothing but python3.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any
from urllib.parse import unquote

from .bugs import BUGS
from .httpio import MAX_BODY, Request, Response, serverkit
from .replica import Config, Replica
from .storage import Journal, Storage


def build_parser() -> argparse.ArgumentParser:
    p = serverkit.parser(
        "crdt-kv",
        "Reference CRDT store: G-Sets and PN-Counters (dsjepsen).",
        "directory for the journal and snapshot",
        BUGS,
    )
    p.add_argument("--gossip-interval", type=float, default=100.0, metavar="MS")
    p.add_argument("--gossip-timeout", type=float, default=1.0, metavar="S")
    p.add_argument("--snapshot-interval", type=float, default=5.0, metavar="S")
    p.add_argument("--flush-interval", type=float, default=2.0, metavar="S", help="volatile")
    return p


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


#: the server's logger (serverkit configures it: --verbose for debug lines)
log = logging.getLogger("crdt-kv")


class Server:
    """HTTP front of one replica. Every node answers every request itself: there is no leader
    to forward to, which is the point of a CRDT."""

    def __init__(self, replica: Replica):
        self.replica = replica

    async def handle(self, req: Request) -> Response:
        try:
            resp = await self._route(req)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            resp = Response(400, {"error": f"bad request: {type(e).__name__}: {e}"})
        except OSError as e:  # the journal could not be written: maybe partly done
            resp = Response(500, {"error": f"storage failed, outcome unknown: {e}"})
        if req.path.startswith(("/set/", "/counter/")):
            # one debug line per client request: the report's log windows show what it served
            log.debug("client %s %s -> %d", req.method, req.path, resp.status)
        return resp

    async def _route(self, req: Request) -> Response:
        path, method = req.path, req.method
        if path.startswith("/set/"):
            key = unquote(path[len("/set/") :])
            if method == "GET":
                return Response(200, {"elements": self.replica.read_set(key)})
            if method == "POST":
                body = req.json()
                if not isinstance(body, dict) or "element" not in body:
                    return Response(400, {"error": 'body must be {"element": ...}'})
                await self.replica.add(key, body["element"])
                return Response(200, {})
            return Response(405, {"error": "use GET or POST on /set/{key}"})
        if path.startswith("/counter/"):
            key = unquote(path[len("/counter/") :])
            if method == "GET":
                return Response(200, {"value": self.replica.read_counter(key)})
            if method == "POST":
                body = req.json()
                if not isinstance(body, dict) or not _is_int(body.get("delta")):
                    return Response(400, {"error": 'body must be {"delta": <integer>}'})
                await self.replica.increment(key, body["delta"])
                return Response(200, {})
            return Response(405, {"error": "use GET or POST on /counter/{key}"})
        if path == "/gossip" and method == "POST":
            return Response(200, await self.replica.on_gossip(req.json()))
        if path == "/push" and method == "POST":
            await self.replica.on_push(req.json())
            return Response(200, {})
        if path == "/status" and method == "GET":
            return Response(200, self.replica.status())
        return Response(404, {"error": f"no endpoint {method} {path}"})


async def amain(args: argparse.Namespace) -> None:
    host, port, peers = serverkit.addresses(args, "crdt-kv")
    log = logging.getLogger("crdt-kv")
    bugs = frozenset(args.bug)
    cfg = Config(
        node_id=args.id,
        peers=peers,
        gossip_interval=args.gossip_interval / 1000.0,
        gossip_timeout=args.gossip_timeout,
        snapshot_interval=args.snapshot_interval,
        bugs=bugs,
    )
    try:
        storage = Storage(args.data_dir, args.id)
        journal = Journal(
            storage, durable="volatile" not in bugs, flush_interval=args.flush_interval
        )
        replica = Replica(cfg, storage, journal, log)
        replayed = replica.recover()
    except serverkit.CorruptData as e:  # never serve damaged counts
        log.error("refusing to start: %s (exit %d)", e, serverkit.EXIT_CORRUPT)
        sys.exit(serverkit.EXIT_CORRUPT)
    server = Server(replica)
    srv = await serverkit.listen(host, port, server.handle, MAX_BODY)
    replica.start()
    log.info(
        "replica %s listening on %s:%d, peers %s, %d journal records replayed, bugs %s",
        replica.replica,
        host,
        port,
        args.peers or "(none)",
        replayed,
        ",".join(sorted(bugs)) or "none",
    )
    await serverkit.until_signalled(srv)
    await replica.stop()  # a clean stop is not a crash: keep everything, even when volatile
    storage.close()


def main(argv: list[str] | None = None) -> int:
    return serverkit.main("crdt-kv", build_parser(), BUGS, amain, argv)


if __name__ == "__main__":
    sys.exit(main())
