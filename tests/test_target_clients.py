"""The client helpers (targets/clients.py): a client library that retries by itself is
refused before a run, with the setting that retries; one that does not passes. Real library
objects (requests, urllib3), as a target's `client()` would build them."""

from __future__ import annotations

import http.server
import threading

import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from dsjepsen.errors import ConfigError
from dsjepsen.targets.clients import HttpJson, NotSent, check_no_retries, retrying_settings


def test_libraries_that_retry_by_themselves_are_refused() -> None:
    session = requests.Session()
    assert retrying_settings(session) == []  # requests' own default: no retries
    check_no_retries(session, "requests")
    session.mount("http://", HTTPAdapter(max_retries=3))
    with pytest.raises(ConfigError, match=r"requests retries requests by itself .*max_retries"):
        check_no_retries(session, "requests")
    # urllib3 retries 3 times unless told otherwise, per pool or per manager
    assert retrying_settings(urllib3.HTTPConnectionPool("db1"))
    assert retrying_settings(urllib3.PoolManager())
    assert retrying_settings(urllib3.PoolManager(retries=urllib3.Retry(total=0, read=2)))
    check_no_retries(urllib3.PoolManager(retries=False))
    check_no_retries(urllib3.HTTPConnectionPool("db1", retries=urllib3.Retry(0, read=False)))
    # a driver's settings one level down (redis-py keeps them in its pool's kwargs)
    driver = type("Driver", (), {})()
    driver.connection_pool = type("Pool", (), {})()
    driver.connection_pool.connection_kwargs = {"retry_on_timeout": True}
    with pytest.raises(ConfigError, match="retry_on_timeout=True"):
        check_no_retries(driver, "a driver")


def test_http_json_tells_not_sent_from_outcome_unknown() -> None:
    """Connecting fails: NotSent (fail is true). Sent, then the server hangs: a timeout
    (the outcome is unknown), and the request was sent exactly once."""
    seen: list[str] = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            seen.append(self.path)
            threading.Event().wait(2.0)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        conn = HttpJson("127.0.0.1", port, timeout=0.5)
        with pytest.raises(TimeoutError):
            conn.request("PUT", "/kv/1", {"value": 1})
        assert seen == ["/kv/1"]  # once: never retried
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NotSent):
        HttpJson("127.0.0.1", port, timeout=0.5).request("GET", "/kv/1")
