"""The fenced resource's server: the store a lock holder writes to while it believes it holds
the lock.

    python -m dsjepsen.targets.fenced.server --id n1 --listen 10.0.0.1:7080 \
        --data-dir /var/lib/fenced [--fencing]

`POST /write {"client", "hold", "token", "value"}` is one guarded write: `hold` names the
holder's hold of the lock (one acquire), `token` the fencing token the lock gave with it (null
when it gave none). Every write is recorded, accepted or not, with its arrival number and this
machine's arrival time, because the resource's own view (which holder's writes landed, in which
order) is what the lock checkers judge. With `--fencing`, a write whose token is older than the
newest token accepted so far is rejected (409): the holder it came from has been superseded,
whatever it believes (Kleppmann, "How to do distributed locking", 2016). A write without a
token cannot be fenced and is accepted: a lock that hands out no tokens leaves the resource
defenceless, which is what the checkers then show. `GET /writes` returns the whole record;
`POST /configure {"fencing"}`, before the first write, switches fencing (the lock workload's
setup op, so that the history itself says whether the resource fenced).

With `--relay-to HOST:PORT` the same program is a holder's agent instead: it runs on every
node and passes each `POST /write` on to the resource, so that a lock holder's writes leave
from the node it is bound to. When the node is paused (the pause fault stops the target's
server and this agent with it, as a VM or process pause would stop an application), a write
sent meanwhile waits in the agent's socket and reaches the resource after the pause, however
long the holder's lease has been over by then: Kleppmann's paused client.

Standard library only (see the package docstring).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from .httpio import PeerPool, Request, Response, serverkit

#: writes recorded at most: a run at the largest rate for hours stays far below it
MAX_WRITES = 2_000_000
log = logging.getLogger("fenced")


def build_parser() -> argparse.ArgumentParser:
    p = serverkit.parser(
        "fenced",
        "The fenced resource of dsjepsen's lock workload.",
        "directory for the journal",
        (),
    )
    p.add_argument(
        "--relay-to",
        metavar="HOST:PORT",
        help="be a holder's agent: pass each POST /write on to the resource there",
    )
    p.add_argument(
        "--fencing",
        action="store_true",
        help="reject a write whose fencing token is older than the newest accepted",
    )
    return p


def _token(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"token must be an integer or null, got {value!r}")


class Resource:
    """The guarded store: every write in arrival order, and the newest token accepted."""

    def __init__(self, fencing: bool, journal: str | None = None) -> None:
        self.fencing = fencing
        self.writes: list[dict[str, Any]] = []
        self.newest: int | None = None
        # a line per write, so that the evidence survives the process (read by hand)
        self._journal = open(journal, "a", encoding="utf-8") if journal else None  # noqa: SIM115

    def write(self, body: Any) -> tuple[bool, dict[str, Any]]:
        """Record one guarded write; (accepted, the record)."""
        if not isinstance(body, dict) or "hold" not in body or "value" not in body:
            raise ValueError('body must be {"client", "hold", "token", "value"}')
        token = _token(body.get("token"))
        stale = self.fencing and token is not None and self.newest is not None
        accepted = not (stale and token < self.newest)  # type: ignore[operator]
        record = {
            "seq": len(self.writes),
            "time": time.time_ns(),
            "client": body.get("client"),
            "hold": str(body["hold"]),
            "token": token,
            "value": body["value"],
            "accepted": accepted,
            "newest": self.newest,
        }
        if accepted and token is not None and (self.newest is None or token > self.newest):
            self.newest = token
        self.writes.append(record)
        if self._journal is not None:
            self._journal.write(json.dumps(record) + "\n")
            self._journal.flush()
        return accepted, record

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


class Server:
    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    async def handle(self, req: Request) -> Response:
        try:
            return self._route(req)
        except (ValueError, KeyError, TypeError) as e:
            return Response(400, {"error": f"bad request: {e}"})

    def _route(self, req: Request) -> Response:
        r = self.resource
        if req.path == "/write" and req.method == "POST":
            if len(r.writes) >= MAX_WRITES:
                return Response(503, {"error": f"full: {MAX_WRITES} writes recorded"})
            accepted, rec = r.write(req.json())
            log.debug(
                "write hold %s token %s value %s -> %s",
                rec["hold"],
                rec["token"],
                rec["value"],
                "accepted" if accepted else f"rejected (newest {rec['newest']})",
            )
            if accepted:
                return Response(200, {"accepted": True, "seq": rec["seq"], "token": rec["token"]})
            return Response(
                409,
                {
                    "accepted": False,
                    "seq": rec["seq"],
                    "error": f"stale token {rec['token']}: {rec['newest']} was accepted before",
                    "newest": rec["newest"],
                },
            )
        if req.path == "/configure" and req.method == "POST":
            body = req.json()
            if not isinstance(body, dict) or not isinstance(body.get("fencing"), bool):
                raise ValueError('body must be {"fencing": true|false}')
            if r.writes:
                return Response(409, {"error": "writes were recorded already: configure first"})
            r.fencing = body["fencing"]
            log.info("fencing %s", "on" if r.fencing else "off")
            return Response(200, {"fencing": r.fencing})
        if req.path == "/writes" and req.method == "GET":
            return Response(200, {"fencing": r.fencing, "writes": r.writes})
        if req.path == "/status" and req.method == "GET":
            return Response(
                200, {"role": "resource", "fencing": r.fencing, "writes": len(r.writes)}
            )
        return Response(400, {"error": f"no endpoint {req.method} {req.path}"})


class Relay:
    """A holder's agent: `POST /write` passed on to the resource, its answer passed back."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.pool = PeerPool(host, port)
        self.timeout = timeout

    async def handle(self, req: Request) -> Response:
        if req.path != "/write" or req.method != "POST":
            return Response(400, {"error": f"a relay passes on POST /write only, not {req.path}"})
        try:
            status, payload = await self.pool.request("POST", "/write", req.body, self.timeout, {})
        except serverkit.NotSent as e:  # connecting failed: the resource never saw it
            return Response(503, {"error": f"resource unreachable: {e}"})
        except Exception as e:  # noqa: BLE001 - whatever happened, the outcome is unknown
            log.debug("relay: write not answered: %r", e)
            return Response(504, {"error": f"resource did not answer: {e!r}"})
        log.debug("relay: write -> %d", status)
        return Response(status, payload)


async def amain(args: argparse.Namespace) -> None:
    host, port, _peers = serverkit.addresses(args, "fenced")
    if args.relay_to:
        to_host, to_port = serverkit.hostport(args.relay_to, "--relay-to")
        srv = await serverkit.listen(host, port, Relay(to_host, to_port).handle)
        log.info("relaying writes from %s:%d to %s", host, port, args.relay_to)
        await serverkit.until_signalled(srv)
        return
    resource = Resource(args.fencing, os.path.join(args.data_dir, "writes.jsonl"))
    srv = await serverkit.listen(host, port, Server(resource).handle)
    log.info("listening on %s:%d, fencing %s", host, port, "on" if args.fencing else "off")
    await serverkit.until_signalled(srv)
    resource.close()


def main(argv: list[str] | None = None) -> int:
    return serverkit.main("fenced", build_parser(), (), amain, argv)


if __name__ == "__main__":
    sys.exit(main())
