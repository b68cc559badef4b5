"""The fenced resource's way to the shared serverkit (the HTTP layer and the start-up of the
process): installed, serverkit is this package's sibling inside dsjepsen.targets; uploaded to a
node, `fenced` is a top-level package with serverkit.py beside it (serverkit's docstring has
both layouts). The rest of the package imports it from here.
"""

from __future__ import annotations

if "." in (__package__ or ""):  # installed: dsjepsen.targets.fenced
    from .. import serverkit
else:  # uploaded: <home>/code/fenced beside <home>/code/serverkit.py
    import serverkit  # type: ignore[no-redef,import-not-found]

__all__ = ["PeerPool", "Request", "Response", "serverkit"]

PeerPool = serverkit.PeerPool
Request = serverkit.Request
Response = serverkit.Response
