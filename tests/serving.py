"""`dsjepsen serve` in a thread of the test process, on a free loopback port: the server the
serve, hardening and long-run report tests talk to."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsjepsen.reports.server import make_server


@contextlib.contextmanager
def serving(store: Path, **options: Any) -> Iterator[tuple[str, int]]:
    """Yield (host, port) of a server of `store` (make_server's options), shut down after."""
    srv = make_server(store, "127.0.0.1", 0, quiet=True, **options)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[:2]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)
