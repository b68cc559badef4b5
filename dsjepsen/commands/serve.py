"""`dsjepsen serve`: browse the store's runs and reports over HTTP (read-only)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path

from dsjepsen.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="browse the store's runs and reports in a web browser (read-only)",
        description=(
            "Serve the store read-only: the runs newest first, each run's report.html and "
            "files. Listens on loopback unless --host says otherwise."
        ),
        epilog="example: dsjepsen serve --store store --port 8080",
    )
    p.add_argument("--store", default="store", metavar="DIR", help="the store (default: store)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on, IPv4 or IPv6 (default: 127.0.0.1; ::1 for IPv6 loopback)",
    )
    p.add_argument(
        "--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    p.set_defaults(func=run)


def is_loopback(address: str) -> bool:
    """Whether a *bound* address (what the socket reports, always numeric) is loopback: all of
    127.0.0.0/8, ::1, and 127.x mapped into IPv6. Asking the socket instead of parsing --host
    gets `127.1`, `localhost` and `0x7f000001` right; `::ffff:127.0.0.1` is checked by hand
    because ipaddress does not count mapped addresses as loopback."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def url_host(address: str) -> str:
    """An address as it goes into a URL: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


def run(args: argparse.Namespace) -> int:
    from dsjepsen.reports.server import make_server

    store = Path(args.store)
    if not store.is_dir():
        raise ConfigError(f"--store: {store} is not a directory (run `dsjepsen test` first)")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is not a TCP port (0-65535)")
    try:
        server = make_server(store, args.host, args.port)
    except (OSError, socket.gaierror) as e:
        raise ConfigError(
            f"--host/--port: cannot listen on {args.host}:{args.port}: {e.strerror or e}"
        ) from None
    host, port = str(server.server_address[0]), int(server.server_address[1])
    if not is_loopback(host):
        print(
            f"dsjepsen: warning: serving {store} on {host}, reachable from other machines",
            file=sys.stderr,
        )
    print(
        f"serving {store.resolve()} read-only at http://{url_host(host)}:{port}/ (Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
