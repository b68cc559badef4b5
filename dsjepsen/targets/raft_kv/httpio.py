"""raft-kv's way to the shared serverkit (the HTTP layer and the start-up of the process).

The one module of raft_kv that imports serverkit, because where serverkit lives differs:
installed, it is this package's sibling inside dsjepsen.targets; uploaded to a node, raft_kv is
a top-level package with serverkit.py beside it, where a relative import cannot reach
(serverkit's docstring has both layouts). The rest of the package imports it from here.
"""

from __future__ import annotations

if "." in (__package__ or ""):  # installed: dsjepsen.targets.raft_kv
    from .. import serverkit
else:  # uploaded: <home>/code/raft_kv beside <home>/code/serverkit.py
    import serverkit  # type: ignore[no-redef,import-not-found]

__all__ = [
    "NotSent",
    "PeerConnection",
    "PeerPool",
    "ProtocolError",
    "Request",
    "Response",
    "serverkit",
]

# raft-kv takes serverkit as it is: its default body limit, and peer connections that mark a
# request that never left (a follower answers 503 for a forward the leader never got, 504 for
# one it may have)
NotSent = serverkit.NotSent
PeerConnection = serverkit.PeerConnection
PeerPool = serverkit.PeerPool
ProtocolError = serverkit.ProtocolError
Request = serverkit.Request
Response = serverkit.Response
