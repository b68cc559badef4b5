"""Packet faults between the cluster's nodes: delay, loss, duplicate, reorder, corrupt, rate.

As Jepsen's `jepsen.net` does, each node shapes only the packets it sends to the other nodes:
a classful root qdisc on the interface that reaches its peers, one class with the fault, and one
u32 filter per peer address sending that peer's packets into it. The controller's traffic with
the clients goes elsewhere (its address is no node's), so clients are never slowed.

Two ways to do it, chosen by what the node's kernel has:

- with `sch_netem`: `htb` root, class 1:2 with a `netem` child configured with Jepsen's
  defaults (delay 50 ms, jitter 10 ms, correlation 25 %, normal distribution; loss, duplicate,
  reorder and corrupt 20 % with 75 % correlation), every value an option;
- without it (this machine's kernel: `modprobe sch_netem` fails): `packet-loss` drops with the
  iptables `statistic` match (mode random, our own chain DSJ-PACKET jumped to from OUTPUT, one
  rule per peer; it has no correlation, which the completion says), `packet-rate` uses a `tbf`
  child (1 mbit); the other faults need netem and are refused before the run, naming the module.

What a node supports is asked of the node itself, never inferred from installed files:
`probe_kernel` adds each fault's own qdisc to a throwaway link in the node's network namespace
(netem with the fault's arguments; the htb + tbf tree `packet-rate` installs) and a statistic
rule to a throwaway iptables chain, then removes them. The nemesis picks its method from it,
`unsupported` refuses a fault before setup naming the node that cannot do it, and `dsjepsen
doctor` prints it per node.

Every start is MEASURED: a short UDP probe between two nodes (a tiny python3 echo server in one
node, a client in another, through the nodes' Remotes) records the round-trip loss, the
delays, duplicates and reorders, or a TCP transfer records the rate; `took_effect` is false when
the probe saw no effect, so the vacuous-run check treats the fault as never having happened.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shlex
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.cluster.control.base import RemoteError
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.faults import FaultLook
from dsjepsen.nemesis.base import ON_THIS_KERNEL, FaultPackage, Nemesis, NodeFacts
from dsjepsen.nemesis.common import done, fault_name, maybe_done, not_done
from dsjepsen.options import Option

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Remote
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target

START, STOP = "start-packet", "stop-packet"
CHAIN = "DSJ-PACKET"
TIMEOUT = 20.0
PROBE_PORT = 47913
#: faults that need sch_netem; loss and rate have fallbacks
NETEM_ONLY = ("packet-delay", "packet-duplicate", "packet-reorder", "packet-corrupt")
HTB_CLASS = "rate 1gbit quantum 60000"


# -- what to install ---------------------------------------------------------------------------


def netem_args(fault: str, o: dict[str, Any]) -> list[str]:
    """The `netem ...` arguments of a fault, Jepsen's spelling (jepsen.net/qdisc-*)."""
    delay = [
        "delay",
        f"{o['packet-delay']:g}ms",
        f"{o['packet-jitter']:g}ms",
        f"{o['packet-delay-correlation']:g}%",
        "distribution",
        o["packet-distribution"],
    ]
    pc = [f"{o['packet-percent']:g}%", f"{o['packet-correlation']:g}%"]
    if fault == "packet-delay":
        return delay
    if fault == "packet-loss":
        return ["loss", *pc]
    if fault == "packet-duplicate":
        return ["duplicate", *pc]
    if fault == "packet-reorder":  # reorder needs a delay to reorder against
        return [*delay, "reorder", *pc]
    if fault == "packet-corrupt":
        return ["corrupt", *pc]
    if fault == "packet-rate":
        return ["rate", o["packet-rate"]]
    raise ValueError(f"no packet fault {fault!r}")


def tc_commands(dev: str, peers: list[str], child: list[str]) -> list[list[str]]:
    """argv of each tc command that sends packets to `peers` through `child` (a qdisc spec
    such as ["netem", "delay", ...] or ["tbf", "rate", ...]) and leaves the rest alone."""
    cmds = [
        ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"],
        ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
         *HTB_CLASS.split()],
        ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb",
         *HTB_CLASS.split()],
        ["tc", "qdisc", "add", "dev", dev, "parent", "1:2", "handle", "20:", *child],
    ]  # fmt: skip
    for p in peers:
        cmds.append(
            ["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1",
             "u32", "match", "ip", "dst", f"{p}/32", "flowid", "1:2"]
        )  # fmt: skip
    return cmds


def tbf_args(rate: str) -> list[str]:
    return ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]


def statistic_drop(probability: float) -> list[str]:
    """iptables words after `-A CHAIN -d PEER`: drop `probability` of the packets."""
    return ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.4f}",
            "-j", "DROP"]  # fmt: skip


def statistic_rules(peers: list[str], probability: float) -> str:
    """iptables-restore input: drop `probability` of packets sent to each peer."""
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    lines += [shlex.join(["-A", CHAIN, "-d", p, *statistic_drop(probability)]) for p in peers]
    return "\n".join([*lines, f"-I OUTPUT 1 -j {CHAIN}", "COMMIT", ""])


def controller_has_netem() -> bool:
    """Whether this machine's kernel has sch_netem (loaded, a module file, or built in).

    For judging the options alone, before any node is reached and possibly without root:
    nodes on this kernel have what it has. Once nodes are open they are asked instead
    (`probe_kernel`)."""
    if os.path.exists("/sys/module/sch_netem"):
        return True
    base = f"/lib/modules/{os.uname().release}"
    try:
        with open(f"{base}/modules.builtin") as f:
            if "sch_netem" in f.read():
                return True
    except OSError:
        pass
    for _root, _dirs, files in os.walk(f"{base}/kernel/net/sched"):
        if any(f.startswith("sch_netem.ko") for f in files):
            return True
    return False


# -- on a node ---------------------------------------------------------------------------------


def device_to(remote: Remote, address: str) -> str:
    """The interface a node sends to `address` through (`ip route get`)."""
    res = remote.run(["ip", "-o", "route", "get", address], timeout=TIMEOUT)
    m = re.search(r"\bdev (\S+)", res.stdout)
    if not m:
        raise HarnessError(f"node {remote.node.name}: no route to {address}: {res.stdout!r}")
    return m.group(1)


def heal_node(remote: Remote, dev: str | None) -> bool:
    """Remove our iptables chain and our root qdisc (htb handle 1:) on `dev`; True when
    something was there. Idempotent; touches nothing else."""
    found = False
    rules = remote.run(["iptables", "-w", "-S"], timeout=TIMEOUT, check=False).stdout
    for line in rules.splitlines():
        words = shlex.split(line)
        if words[:1] == ["-A"] and words[-2:] == ["-j", CHAIN]:
            remote.run(["iptables", "-w", "-D", *words[1:]], timeout=TIMEOUT, check=False)
            found = True
    if f"-N {CHAIN}" in rules:
        remote.run(["iptables", "-w", "-F", CHAIN], timeout=TIMEOUT, check=False)
        remote.run(["iptables", "-w", "-X", CHAIN], timeout=TIMEOUT, check=False)
        found = True
    if dev:
        shown = remote.run(["tc", "qdisc", "show", "dev", dev], timeout=TIMEOUT, check=False)
        if re.search(r"^qdisc htb 1: root", shown.stdout, re.M):
            remote.run(["tc", "qdisc", "del", "dev", dev, "root"], timeout=TIMEOUT)
            found = True
    return found


# -- what a node's kernel supports ---------------------------------------------------------------

#: every packet fault, in the order doctor shows them
FAULTS = ("packet-delay", "packet-loss", "packet-duplicate", "packet-reorder", "packet-corrupt",
          "packet-rate")  # fmt: skip
#: how each method is named to people
METHODS = {"netem": "tc netem", "statistic": "iptables statistic", "tbf": "tc tbf"}
#: the fallback of the faults that have one, when netem is missing
FALLBACK = {"packet-loss": "statistic", "packet-rate": "tbf"}
#: a documentation address (RFC 5737): the probe rule never matches a real peer
PROBE_PEER = "192.0.2.1"


@dataclass(frozen=True)
class Support:
    """Whether one packet fault works on one node: how (`method`), or why not (`why`)."""

    fault: str
    method: str | None  # "netem", "statistic" or "tbf"; None when the node cannot do it
    why: str = ""

    @property
    def works(self) -> bool:
        return self.method is not None

    def shown(self) -> str:
        return f"works ({METHODS[self.method]})" if self.method else f"refused: {self.why}"


@dataclass(frozen=True)
class KernelProbe:
    """What one node's kernel answered when each method was tried: per method (and per fault,
    for netem, whose arguments differ) None when it worked, else the error."""

    node: str
    netem: dict[str, str | None]
    tbf: str | None
    statistic: str | None

    def methods(self, fault: str) -> list[str]:
        """The methods that work for `fault` on this node, preferred first."""
        out = ["netem"] if self.netem.get(fault) is None else []
        fallback = FALLBACK.get(fault)
        if fallback is not None and getattr(self, fallback) is None:
            out.append(fallback)
        return out

    def support(self, fault: str) -> Support:
        works = self.methods(fault)
        if works:
            return Support(fault, works[0])
        why = str(self.netem.get(fault))
        fallback = FALLBACK.get(fault)
        if fallback is not None:
            why += f"; {METHODS[fallback]}: {getattr(self, fallback)}"
        return Support(fault, None, why)


def _tried(remote: Remote, argv: list[str]) -> str | None:
    """None when argv succeeds on the node, else its last line of error (a missing program
    included)."""
    try:
        res = remote.run(argv, timeout=TIMEOUT, check=False)
    except RemoteError as e:
        return str(e)[:160]
    if res.exit == 0:
        return None
    lines = (res.stderr.strip() or res.stdout.strip()).splitlines()
    return lines[-1].strip()[:160] if lines else f"exit {res.exit}"


def probe_kernel(remote: Remote, options: dict[str, Any] | None = None) -> KernelProbe:
    """Try every method on the node, for real and briefly: each netem fault's own qdisc and the
    htb + tbf tree of `packet-rate` on a throwaway link in the node's network namespace (a
    dummy, or a veth pair where the kernel has no dummy), a statistic rule in a throwaway
    iptables chain. All of it is removed again; the node's own links and rules are untouched.
    """
    o = {opt.name: opt.default for opt in PacketFaults.options} | dict(options or {})
    suffix = secrets.token_hex(4)
    link, chain = f"dsjpr{suffix}", f"DSJ-PROBE-{suffix}"
    made = _tried(remote, ["ip", "link", "add", link, "type", "dummy"])
    if made is not None:
        made = _tried(remote, ["ip", "link", "add", link, "type", "veth", "peer", "name",
                               f"{link}p"])  # fmt: skip
    if made is not None:  # tc cannot be tried; iptables still can
        why = f"cannot add a throwaway link to try tc on ({made})"
        netem: dict[str, str | None] = dict.fromkeys(FAULTS, why)
        tbf: str | None = why
    else:
        try:
            netem, tbf = _probe_tc(remote, link, o)
        finally:
            _tried(remote, ["ip", "link", "del", link])
    statistic = _tried(remote, ["iptables", "-w", "-N", chain])
    if statistic is None:
        try:
            rule = ["iptables", "-w", "-A", chain, "-d", PROBE_PEER, *statistic_drop(0.2)]
            statistic = _tried(remote, rule)
        finally:
            _tried(remote, ["iptables", "-w", "-F", chain])
            _tried(remote, ["iptables", "-w", "-X", chain])
    return KernelProbe(remote.node.name, netem, tbf, statistic)


def _probe_tc(remote: Remote, link: str, o: dict[str, Any]) -> tuple[dict[str, str | None],
                                                                      str | None]:  # fmt: skip
    """({fault: netem error or None}, tbf error or None) on the throwaway `link`."""
    netem: dict[str, str | None] = {}
    missing: str | None = None
    for fault in FAULTS:
        err = missing or _tried(
            remote, ["tc", "qdisc", "replace", "dev", link, "root", "netem", *netem_args(fault, o)]
        )
        if err and missing is None and "unknown" in err.lower():
            missing = err = f"no sch_netem module (tc: {err})"
        netem[fault] = err
    _tried(remote, ["tc", "qdisc", "del", "dev", link, "root"])
    tbf = None
    for argv in tc_commands(link, [], tbf_args(o["packet-rate"])):
        tbf = tbf or _tried(remote, argv)
    if tbf and "unknown" in tbf.lower():
        tbf = f"no sch_tbf or sch_htb module (tc: {tbf})"
    _tried(remote, ["tc", "qdisc", "del", "dev", link, "root"])
    return netem, tbf


def probe_nodes(cluster: Cluster, options: dict[str, Any] | None = None) -> dict[str, KernelProbe]:
    """`probe_kernel` on every node at once."""
    names = cluster.names
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        futures = {n: pool.submit(probe_kernel, cluster.remote(n), options) for n in names}
    return {n: f.result() for n, f in futures.items()}


def common_method(fault: str, probes: dict[str, KernelProbe]) -> str:
    """The method `fault` uses on every node (one fault, one method, so that the completion and
    the measurement describe every node): the most preferred that works on all of them.
    HarnessError naming the node when none does."""
    for node, probe in probes.items():
        if not probe.methods(fault):
            raise HarnessError(f"{fault} cannot run on node {node}: {probe.support(fault).why}")
    first = next(iter(probes.values()))
    for method in first.methods(fault):
        if all(method in p.methods(fault) for p in probes.values()):
            return method
    each = ", ".join(f"{n} {p.methods(fault)[0]}" for n, p in probes.items())
    raise HarnessError(f"{fault}: no method works on every node ({each})")


# -- measuring ---------------------------------------------------------------------------------

_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
try:
    while True:
        data, peer = s.recvfrom(2048)
        if data == b"stop":
            break
        try:
            s.sendto(data, peer)
        except OSError:  # iptables DROP on OUTPUT answers sendto with EPERM: a lost echo
            pass
except socket.timeout:
    pass
"""

_PING = """
import json, socket, sys, time
host, port, n, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, got, order = {}, {}, []
def drain():
    while True:
        try:
            data, _ = s.recvfrom(2048)
        except BlockingIOError:
            return
        i = int(data.split(b" ")[0])
        if i in sent:
            got.setdefault(i, []).append(time.monotonic() - sent[i])
            order.append(i)
for i in range(n):
    sent[i] = time.monotonic()
    try:
        s.sendto(b"%d %s" % (i, b"x" * 64), (host, port))
    except OSError:
        pass
    time.sleep(gap)
    drain()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    time.sleep(0.01)
    drain()
for _ in range(3):
    try:
        s.sendto(b"stop", (host, port))
    except OSError:
        pass
rtts = [r[0] for r in got.values()]
print(json.dumps({"sent": n, "received": len(got), "duplicates": sum(len(r) - 1 for r in got.values()),
                  "reordered": sum(1 for a, b in zip(order, order[1:]) if b < a),
                  "rtts_ms": sorted(round(x * 1000, 2) for x in rtts)}))
"""

_SINK = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(float(sys.argv[3]))
c, _ = s.accept(); c.settimeout(float(sys.argv[3]))
n, t0 = 0, None
while True:
    d = c.recv(65536)
    if not d:
        break
    if t0 is None:
        t0 = time.monotonic()
    n += len(d)
print(n, time.monotonic() - (t0 or time.monotonic()))
"""

_SEND = """
import socket, sys, time
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); break
    except OSError:
        time.sleep(0.05)
c.sendall(b"x" * int(sys.argv[3])); c.close()
"""


def _python(cluster: Cluster) -> str:
    return sys.executable if cluster.shares_controller_files else "python3"


def _pair(cluster: Cluster, a: str, b: str, server: list[str], client: list[str], secs: float):
    """Run `server` on b and, once it listens, `client` on a; (server out, client out)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(cluster.remote(b).run, server, timeout=secs + 10)
        time.sleep(0.3)  # the server binds well within this
        out = cluster.remote(a).run(client, timeout=secs + 10)
        srv = fut.result()
    return srv.stdout, out.stdout


def probe_udp(cluster: Cluster, a: str, b: str, count: int = 200, gap: float = 0.005) -> dict:
    """UDP echo from a to b: round-trip loss, duplicates, reorders and RTTs."""
    py = _python(cluster)
    addr = cluster.node(b).address
    secs = count * gap + 4
    _s, out = _pair(
        cluster, a, b,
        [py, "-c", _ECHO, addr, str(PROBE_PORT), f"{secs:g}"],
        [py, "-c", _PING, addr, str(PROBE_PORT), str(count), f"{gap:g}"],
        secs,
    )  # fmt: skip
    r = json.loads(out.strip().splitlines()[-1])
    rtts = r.pop("rtts_ms")
    r["loss"] = round(1 - r["received"] / r["sent"], 3)
    r["rtt_ms_median"] = round(statistics.median(rtts), 2) if rtts else None
    r["rtt_ms_max"] = max(rtts) if rtts else None
    r.update(probe="udp echo", source=a, destination=b)
    return r


def probe_rate(cluster: Cluster, a: str, b: str, size: int = 131072) -> dict:
    """TCP transfer of `size` bytes from a to b: the rate b received at, bits per second."""
    py = _python(cluster)
    addr = cluster.node(b).address
    srv, _c = _pair(
        cluster, a, b,
        [py, "-c", _SINK, addr, str(PROBE_PORT), "15"],
        [py, "-c", _SEND, addr, str(PROBE_PORT), str(size)],
        15,
    )  # fmt: skip
    n, secs = srv.split()
    bps = int(n) * 8 / max(float(secs), 1e-6)
    return {"probe": "tcp transfer", "source": a, "destination": b, "bytes": int(n),
            "seconds": round(float(secs), 3), "rate_bps": round(bps)}  # fmt: skip


def judged(fault: str, m: dict, o: dict[str, Any]) -> tuple[bool, str]:
    """(took effect, one sentence) from a probe result."""
    if fault == "packet-rate":
        limit = _rate_bps(o["packet-rate"])
        ok = m["rate_bps"] <= 2 * limit
        return ok, f"measured {m['rate_bps'] / 1e6:.3f} Mbit/s (limit {o['packet-rate']})"
    if fault in ("packet-loss", "packet-corrupt"):
        p = o["packet-percent"] / 100
        expect = 1 - (1 - p) ** 2  # both directions of a round trip
        ok = m["loss"] >= expect / 3 and m["loss"] > 0
        return ok, f"measured round-trip loss {m['loss']:.1%} (expected about {expect:.0%})"
    if fault == "packet-duplicate":
        return m["duplicates"] > 0, f"measured {m['duplicates']} duplicate echoes"
    if fault == "packet-reorder":
        return m["reordered"] > 0, f"measured {m['reordered']} reordered echoes"
    med = m["rtt_ms_median"] or 0.0
    return med >= o["packet-delay"], f"measured median RTT {med:g} ms"


def _rate_bps(rate: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(k|m|g)?bit", rate.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--packet-rate: expected e.g. 1mbit or 500kbit, got {rate!r}")
    return float(m.group(1)) * {None: 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]


def _check_rate(value: Any) -> None:
    _rate_bps(str(value))


def _check_percent(value: Any) -> None:
    if float(value) > 100:
        raise ConfigError(f"--packet-percent: at most 100, got {value:g}")


# -- the nemesis -------------------------------------------------------------------------------


class PacketNemesis(Nemesis):
    fs = (START, STOP)

    def __init__(self, name: str, options: dict[str, Any], rng: random.Random) -> None:
        self.name, self.options, self.rng = name, options, rng
        self._lock = threading.Lock()
        self._devs: dict[str, str] = {}
        self._method: str | None = None

    def _dev(self, cluster: Cluster, node: str) -> str | None:
        peers = [n.address for n in cluster.nodes if n.name != node]
        if not peers:
            return None
        if node not in self._devs:
            self._devs[node] = device_to(cluster.remote(node), peers[0])
        return self._devs[node]

    def _each(self, cluster: Cluster, fn: Any) -> dict[str, Any]:
        names = cluster.names
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = {n: pool.submit(fn, n) for n in names}
        errors = [f"node {n}: {f.exception()}" for n, f in futures.items() if f.exception()]
        if errors:
            raise HarnessError("; ".join(errors))
        return {n: f.result() for n, f in futures.items()}

    def _install(self, cluster: Cluster, node: str, how: str) -> list[list[str]]:
        remote = cluster.remote(node)
        dev = self._dev(cluster, node)
        heal_node(remote, dev)
        peers = [n.address for n in cluster.nodes if n.name != node]
        if not peers or dev is None:
            return []
        if how == "statistic":
            rules = statistic_rules(peers, self.options["packet-percent"] / 100)
            remote.run(["iptables-restore", "-w", "--noflush"], timeout=TIMEOUT, input=rules)
            return [["iptables-restore", "-w", "--noflush"]]
        child = tbf_args(self.options["packet-rate"]) if how == "tbf" else [
            "netem", *netem_args(self.name, self.options)]  # fmt: skip
        cmds = tc_commands(dev, peers, child)
        for argv in cmds:
            res = remote.run(argv, timeout=TIMEOUT, check=False)
            if res.exit != 0:
                heal_node(remote, dev)
                text = (res.stderr or res.stdout).strip()
                if "unknown" in text.lower() and child[0] == "netem":
                    raise HarnessError(f"node {node} has no sch_netem ({text})")
                raise HarnessError(f"node {node}: {shlex.join(argv)}: {text}")
        return cmds

    def _how(self, cluster: Cluster) -> str:
        """netem where the nodes' kernels take it, else the fallback for loss and rate: what
        the nodes answered when tried (once per run)."""
        if self._method is None:
            self._method = common_method(self.name, probe_nodes(cluster, self.options))
        return self._method

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        fault = fault_name(op, self.name)
        with self._lock:
            if op.f == STOP:
                try:
                    healed = self._each(cluster, lambda n: heal_node(cluster.remote(n),
                                                                      self._dev(cluster, n)))  # fmt: skip
                except Exception as e:
                    return maybe_done(op, fault, cluster.names, "remove packet faults", str(e))
                nodes = [n for n, h in healed.items() if h]
                return done(
                    op, fault, nodes, f"removed {self.name} on {', '.join(nodes) or 'no node'}"
                )
            if op.f != START:
                return not_done(op, fault, f"{self.name} does not handle f={op.f!r}")
            if len(cluster.names) < 2:
                return not_done(op, fault, "packet faults need two nodes")
            try:
                how = self._how(cluster)
            except HarnessError as e:
                return not_done(op, fault, str(e))
            try:
                cmds = self._each(cluster, lambda n: self._install(cluster, n, how))
            except Exception as e:
                return maybe_done(
                    op, fault, cluster.names, f"install {self.name}", str(e), method=how
                )
            a, b = self.rng.sample(cluster.names, 2)
            data: dict[str, Any] = {
                "method": how,
                "settings": self._settings(how),
                "commands": {n: [shlex.join(c) for c in cs] for n, cs in cmds.items()},
            }
            try:
                m = (
                    probe_rate(cluster, a, b)
                    if self.name == "packet-rate"
                    else probe_udp(cluster, a, b)
                )
                took, said = judged(self.name, m, self.options)
            except Exception as e:  # the fault is installed; say that it was not measured
                m, took, said = {"error": str(e)}, False, f"not measured: {e}"
            what = f"{self.name} ({how}) on packets between all {len(cluster.names)} nodes; {said}"
            if not took:
                what += "; no measurable effect"
            return done(op, fault, cluster.names, what, measured=m, took_effect=took, **data)

    def _settings(self, how: str) -> dict[str, Any]:
        o = self.options
        if how == "statistic":
            return {"probability": o["packet-percent"] / 100,
                    "note": "iptables statistic has no correlation"}  # fmt: skip
        if how == "tbf":
            return {"rate": o["packet-rate"]}
        return {"netem": netem_args(self.name, o)}

    def heal(self, cluster: Cluster) -> None:
        with self._lock:
            self._each(cluster, lambda n: heal_node(cluster.remote(n), self._dev(cluster, n)))


class PacketFaults(FaultPackage):
    """Packet faults between nodes; they heal with the network, first."""

    family: ClassVar[str] = "packet"
    look: ClassVar[FaultLook] = FaultLook(
        label="packet",
        colour="#7b3fa0",
        title="Messages to and from the answering node were being lost, delayed or "
        "reordered: {node}",
        on_node="\u201c{fault}\u201d acted on its traffic during the op",
        suggests=(
            "A message lost or delayed between nodes was taken as an answer, or its retry "
            "was applied twice: acknowledgements that assume a reliable, ordered network "
            "break when packets are lost, duplicated or reordered."
        ),
        rank=40,
    )
    heal_order: ClassVar[int] = 12
    faults: ClassVar[dict[str, str]] = {
        "packet-delay": "delay packets between nodes (netem: 50 ms ± 10 ms, 25 %, normal)",
        "packet-loss": "drop 20 % of packets between nodes (netem, or iptables statistic)",
        "packet-duplicate": "duplicate 20 % of packets between nodes (netem)",
        "packet-reorder": "reorder 20 % of packets between nodes (netem, with the delay)",
        "packet-corrupt": "corrupt 20 % of packets between nodes (netem)",
        "packet-rate": "limit the rate between nodes to 1 mbit (netem, or tbf)",
    }
    options: ClassVar[tuple[Option, ...]] = (
        Option("packet-delay", "float", 50.0, "packet-delay / -reorder: delay, ms", minimum=0,
               maximum=60_000),
        Option("packet-jitter", "float", 10.0, "packet-delay: jitter, ms", minimum=0,
               maximum=60_000),
        Option("packet-delay-correlation", "float", 25.0, "packet-delay: correlation, percent",
               minimum=0, maximum=100),  # fmt: skip
        Option("packet-distribution", "str", "normal", "packet-delay: netem distribution"),
        Option("packet-percent", "float", 20.0,
               "packet-loss / -duplicate / -reorder / -corrupt: share of packets, percent", minimum=0,
               maximum=100, check=_check_percent),
        Option("packet-correlation", "float", 75.0,
               "correlation of loss / duplicate / reorder / corrupt, percent", minimum=0,
               maximum=100),
        Option("packet-rate", "str", "1mbit", "packet-rate: the rate limit (tc syntax)",
               check=_check_rate),
    )  # fmt: skip

    def unsupported(self, name: str, target: Any, nodes: NodeFacts = ON_THIS_KERNEL) -> str | None:
        """Faults the nodes' kernels cannot do. With the cluster open, the nodes are tried
        (`probe_kernel`) and the first that cannot is named; before that, nodes on this
        machine's kernel (the local cluster, docker) cannot do what this kernel lacks, and
        nodes with kernels of their own are left to be tried once open."""
        if nodes.cluster is not None:
            try:
                common_method(name, probe_nodes(nodes.cluster))
            except HarnessError as e:
                return str(e)
            return None
        if nodes.own_kernels:
            return None
        if name in NETEM_ONLY and not controller_has_netem():
            return (
                "needs the kernel module sch_netem, which this kernel lacks "
                "(modprobe sch_netem fails); packet-loss and packet-rate work without it"
            )
        return None

    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        _rate_bps(options.get("packet-rate", "1mbit"))
        full = {o.name: options.get(o.name, o.default) for o in self.options}
        return PacketNemesis(name, full, rng)

    def took_effect(self, completion: Op) -> bool:
        value = completion.value
        return (
            completion.type == "ok" and isinstance(value, dict) and value.get("took_effect") is True
        )
