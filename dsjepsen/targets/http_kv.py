"""HttpKvTarget: any server that speaks docs/http-kv-contract.md, started from a command
template the user gives (`--server-cmd`), tested as a black box.

The template is filled in per node and split into an argument list; every substituted value is
shlex-quoted first, so a node name, path or address can never become two arguments or a shell
construct (there is no shell). The process is run with the daemon helpers like every other
target, so kill / pause / resume / log collection work the same as for raft-kv.

`{env:NAME}` takes a value from the controller's environment (a password, a token): it is
filled in on the controller, each time a node's command is built, and never stored. test.json
records the template, which holds only `{env:NAME}`; errors, logs and the report show the
command with `{env:NAME}` in place of the value (`shown_argv`). A variable that is not set is
one error naming it, before the run. The value does reach the node's process table, as any
argument does; a server that prints its own command line puts it in its log.
"""

from __future__ import annotations

import os
import re
import shlex
import string
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dsjepsen.cluster.daemon import wait_for_port
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.options import Option
from dsjepsen.targets.contract_client import CONTRACT_FS, ContractClient, setup_round_trip
from dsjepsen.targets.http_server import HttpServerTarget

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node

DEFAULT_PORT = 7070
#: placeholder -> what it stands for (shown in errors and in the docs)
PLACEHOLDERS = {
    "node": "this node's name (n1, n2, ...)",
    "address": "this node's address",
    "port": "the server port (--server-port)",
    "peers": "the other nodes as name=address:port,... (empty with one node)",
    "all_nodes": "every node as name=address:port,...",
    "data_dir": "a per-node data directory (created before start, removed by wipe)",
    "env:NAME": "the controller's environment variable NAME (never stored)",
}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: key of the setup round trip; the workloads use integer keys, so it never meets theirs
SETUP_KEY = "dsjepsen-setup"


def _parse(template: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pieces; `{env:NAME}` comes back as "env:NAME".
    ConfigError for a malformed or unknown placeholder."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(
            f"--server-cmd: malformed template ({e}; write {{{{ for a brace)"
        ) from None
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
            continue
        if field == "env" and not conversion:  # str.format reads NAME as a format spec
            if not spec or not ENV_NAME.fullmatch(spec):
                raise ConfigError(
                    f"--server-cmd: {{env:{spec}}} needs an environment variable name "
                    "(letters, digits, _), e.g. {env:DB_PASSWORD}"
                )
            pieces.append((literal, f"env:{spec}"))
            continue
        if field not in PLACEHOLDERS:
            raise ConfigError(
                f"--server-cmd: unknown placeholder {{{field}}} "
                f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
            )
        if spec or conversion:
            raise ConfigError(
                f"--server-cmd: placeholder {{{field}}} takes no format or !conversion"
            )
        pieces.append((literal, field))
    return pieces


def template_fields(template: str) -> list[str]:
    """The placeholder names used in template ("env:NAME" for an environment variable);
    ConfigError for a malformed or unknown one."""
    return [field for _, field in _parse(template) if field is not None]


def env_names(template: str) -> list[str]:
    """The environment variables the template takes values from, in order of appearance."""
    return list(dict.fromkeys(f[4:] for f in template_fields(template) if f.startswith("env:")))


def check_env(template: str, environ: Mapping[str, str] | None = None) -> None:
    """ConfigError naming the first `{env:NAME}` whose variable the controller lacks."""
    environ = os.environ if environ is None else environ
    for name in env_names(template):
        if name not in environ:
            raise _unset(name)


def _unset(name: str) -> ConfigError:
    return ConfigError(
        f"--server-cmd: environment variable {name} is not set (the template uses {{env:{name}}})"
    )


def render_command(
    template: str,
    values: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    *,
    mask_env: bool = False,
) -> list[str]:
    """Fill template with shlex-quoted values and split it: each value stays one argument (or
    part of one), whatever characters it holds. `{env:NAME}` is the controller's variable
    (`environ`, default os.environ), or stays `{env:NAME}` itself with mask_env (what may be
    shown or stored)."""
    environ = os.environ if environ is None else environ
    out: list[str] = []
    for literal, field in _parse(template):
        out.append(literal)
        if field is None:
            continue
        if field.startswith("env:"):
            name = field[4:]
            if mask_env:
                value = "{" + field + "}"
            elif name in environ:
                value = environ[name]
            else:
                raise _unset(name)
        else:
            value = str(values[field])
        out.append(shlex.quote(value))
    try:
        argv = shlex.split("".join(out))
    except ValueError as e:  # unbalanced quotes in the template itself
        raise ConfigError(f"--server-cmd: cannot split the command ({e})") from None
    if not argv:
        raise ConfigError("--server-cmd: the command is empty")
    return argv


def check_options(server_cmd: str | None = None, port: int | None = None, **_: object) -> None:
    """Validate the target options before anything touches a node (config_from_args)."""
    if not server_cmd or not server_cmd.strip():
        raise ConfigError(
            "--server-cmd: required with --target http-kv (the command that starts your server, "
            "e.g. 'python3 my_server.py --id {node} --port {port} --peers {peers}')"
        )
    sample = {k: "x" for k in PLACEHOLDERS}
    render_command(server_cmd, sample, mask_env=True)
    check_env(server_cmd)
    if port is not None and not 1 <= int(port) <= 65535:
        raise ConfigError(f"--server-port: must be a TCP port 1-65535, got {port}")


class HttpKvTarget(HttpServerTarget):
    name = "http-kv"
    description = (
        "your own server implementing docs/http-kv-contract.md, started on every node from "
        "--server-cmd (placeholders {node} {address} {port} {peers} {data_dir} ...)"
    )
    #: the contract's register endpoints, and its set and counter endpoints (CRDT stores)
    speaks = frozenset({"read", "write", "cas"}) | frozenset(CONTRACT_FS)
    default_workload = "register"
    options = (
        Option(
            "server-cmd",
            "str",
            None,
            "command starting your server on a node; placeholders {node} {address} {port} "
            "{peers} {all_nodes} {data_dir}, and {env:NAME} for a secret from the "
            "controller's environment (never stored)",
            metavar="TEMPLATE",
            keyword="server_cmd",
        ),
        Option(
            "server-port",
            "int",
            DEFAULT_PORT,
            "your server's port",
            minimum=1,
            maximum=65535,
            metavar="PORT",
            keyword="port",
        ),
    )
    version = "user"

    @classmethod
    def check_options(cls, server_cmd: str | None = None, port: int | None = None) -> None:
        check_options(server_cmd, port)

    def __init__(
        self,
        server_cmd: str,
        port: int = DEFAULT_PORT,
        client_timeout: float = 2.0,
        *,
        setup_timeout: float = 30.0,
    ):
        check_options(server_cmd, port)
        self.server_cmd = server_cmd
        self.port = int(port)
        self.client_timeout = client_timeout
        self.setup_timeout = setup_timeout

    # -- process control ----------------------------------------------------------------------

    def _values(self, cluster: Cluster, node: Node) -> dict[str, str]:
        return {
            "node": node.name,
            "address": node.address,
            "port": str(self.port),
            "peers": self.members([n for n in cluster.nodes if n.name != node.name]),
            "all_nodes": self.members(list(cluster.nodes)),
            "data_dir": self.data_dir(node),
        }

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        """The server command for one node, `{env:NAME}` filled from the controller's
        environment now (so a variable unset since the check is still one clear error)."""
        return render_command(self.server_cmd, self._values(cluster, node))

    def shown_argv(self, cluster: Cluster, node: Node) -> list[str]:
        """The command as errors, logs and the report show it: `{env:NAME}` stays as is."""
        return render_command(self.server_cmd, self._values(cluster, node), mask_env=True)

    def redact(self, text: str) -> str:
        """text with the value of every `{env:NAME}` replaced by `{env:NAME}` (a leftover
        server's command line, found on a node, holds the values)."""
        for name in env_names(self.server_cmd):
            value = os.environ.get(name, "")
            if value:
                text = text.replace(value, "{env:" + name + "}")
        return text

    def setup(self, cluster: Cluster) -> None:
        for node in cluster.nodes:
            self.start(cluster, node.name)
        deadline = time.monotonic() + self.setup_timeout
        silent = []
        for node in cluster.nodes:
            try:
                wait_for_port(
                    node.address, self.port, timeout=max(1.0, deadline - time.monotonic())
                )
            except HarnessError:
                silent.append(node)
        if silent:
            raise HarnessError(
                f"http-kv: port {self.port} never answered on "
                f"{', '.join(n.name for n in silent)} within {self.setup_timeout:g}s; "
                f"see {self._logs(cluster, silent)}"
            )
        last = ""
        while True:
            for node in cluster.nodes:
                ok, last = self._round_trip(cluster, node)
                if ok:
                    return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"http-kv: no node ({', '.join(cluster.names)}) completed a write and a read "
                    f"of {SETUP_KEY} (register, set or counter endpoints) within "
                    f"{self.setup_timeout:g}s (last: {last}); "
                    f"see {self._logs(cluster, cluster.nodes)}"
                )
            time.sleep(0.2)

    def _logs(self, cluster: Cluster, nodes: list[Node]) -> str:
        return ", ".join(f"{n.name}:{self.log_file(n)}" for n in nodes)

    def _round_trip(self, cluster: Cluster, node: Node) -> tuple[bool, str]:
        """Write a fresh value and read it back through node (register, set or counter
        endpoints, whichever the server has): the store really serves."""
        client = ContractClient(
            node.address, self.port, timeout=self.client_timeout, node=node.name
        )
        try:
            why = setup_round_trip(client)
            return why is None, "" if why is None else f"{node.name}: {why}"
        except Exception as e:  # noqa: BLE001 - any failure means "not serving yet"
            return False, f"{node.name}: {type(e).__name__}: {e}"
        finally:
            client.close()

    def leader(self, cluster: Cluster) -> str | None:
        """The node that says it leads (highest term wins), else the node most others name as
        leader; None when the server has no /status or no `leader` field (it is optional)."""
        claims: list[tuple[int, str]] = []
        named: Counter[str] = Counter()
        for node in cluster.names:
            st = self.status(cluster, node)
            if not st:
                continue
            term = st.get("term")
            term = term if isinstance(term, int) and not isinstance(term, bool) else 0
            if st.get("role") == "leader":
                claims.append((term, node))
            hint = st.get("leader")
            if isinstance(hint, str) and hint in cluster.names:
                named[hint] += 1
        if claims:
            return max(claims)[1]
        return named.most_common(1)[0][0] if named else None
