"""crdt-kv's way to the shared serverkit, with the limits of gossip.

Only this module imports serverkit, for the reason raft_kv/httpio.py gives (serverkit is a
sibling inside dsjepsen.targets when installed, a top-level module beside crdt_kv on a node);
the rest of the package imports what it needs from here.
"""

from __future__ import annotations

if "." in (__package__ or ""):  # installed: dsjepsen.targets.crdt_kv
    from .. import serverkit
else:  # uploaded: <home>/code/crdt_kv beside <home>/code/serverkit.py
    import serverkit  # type: ignore[no-redef,import-not-found]

__all__ = ["MAX_BODY", "PeerConnection", "ProtocolError", "Request", "Response", "serverkit"]

#: a gossip exchange carries the state of every key a peer has not acknowledged, so bodies,
#: asked and answered, may be larger than raft-kv's
MAX_BODY = 64 * 1024 * 1024

ProtocolError = serverkit.ProtocolError
Request = serverkit.Request
Response = serverkit.Response


class PeerConnection(serverkit.PeerConnection):
    """A gossip connection: gossip is idempotent, so a failed exchange is simply tried again
    next round, and the failure is kept as it was raised (a peer's last error, in /status)."""

    max_body = MAX_BODY
    separators = (",", ":")
    marks_not_sent = False
