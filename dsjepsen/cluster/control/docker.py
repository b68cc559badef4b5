"""The docker backend: a node is a running container, reached with `docker exec` / `docker cp`.

The docker CLI takes the argv as is (no shell in between), so hostile strings need no
quoting. What it does parse is options: every command built here puts `--` before the container
name, so no name is ever read as a docker option, and a container name docker itself could not
have created (it must start with a letter or digit) is refused when the remote is made, naming
the node. Local paths given to `docker cp` are made absolute, because docker reads a relative
path with a colon as CONTAINER:PATH and `-` as a tar stream on stdin.

A `docker exec` costs ~100 ms (300+ ms on a loaded machine): the CLI, the engine and runc each
start something. So commands go through the same command agent as the SSH backend (a POSIX
sh loop, `agent.AGENT_SCRIPT`), started once per `docker exec -i` session and kept: a command
then costs a few forks in the container. A timed-out command's process group is killed from
another agent. Where the agent cannot start, each command is its own `docker exec`.

Killing the local `docker exec` client does not stop the process inside the container (docker
keeps an exec session running without its client). So without the agent every command runs
under a small wrapper, `setsid -w sh -c WRAPPER PIDFILE ARGV...`, that puts it in a session of its own and
records the session's id; a command that times out is then killed, with its whole process
group, by a second `docker exec`. A daemon the command detached into a session of its own
(daemon.start_daemon) is not touched. The container needs `sh` and util-linux's `setsid`.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence

from dsjepsen.cluster.backend import Backend, NodeSettings, NodeSpec
from dsjepsen.cluster.control.agent import (
    AGENT_SCRIPT,
    MAX_IDLE_AGENTS,
    AgentRefused,
    AgentTimeout,
    CommandAgent,
    command_line,
    pop_usable,
)
from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteConfigError,
    RemoteError,
    RemoteTimeout,
    Result,
    env_assignments,
    exit_failure,
)
from dsjepsen.cluster.control.local import run_argv
from dsjepsen.errors import ConfigError

#: docker's own rule for container names (and IDs are hex): first a letter or digit
CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def validate_container(node: str, container: str) -> str:
    """The container name, or ConfigError (exit 254) naming the node.

    A name starting with `-` would be an option to docker wherever `--` is missing (a nodes
    file is configuration a user may have been handed); other characters docker never allows
    in a name could only select the wrong thing (a `:` splits `docker cp` arguments)."""
    if container.startswith("-"):
        raise ConfigError(
            f"node {node}: container name {container!r} starts with '-' "
            "(docker would read it as an option)"
        )
    if not CONTAINER_RE.match(container):
        raise ConfigError(
            f"node {node}: invalid container name {container!r} "
            "(docker names are letters, digits, '_', '.' and '-', starting with a letter or digit)"
        )
    return container


#: records its own pid (the new session's id, as `setsid` made it the leader) in $0, runs the
#: argv, removes the record and passes the exit status on
WRAPPER = 'echo $$ >"$0" || exit 125; "$@"; r=$?; rm -f -- "$0"; exit $r'
#: kills the process group recorded by WRAPPER
KILLER = 'p=$(cat -- "$0" 2>/dev/null) && kill -s KILL -- "-$p" 2>/dev/null; rm -f -- "$0"'


def wrapped(argv: Sequence[str], pidfile: str) -> list[str]:
    """argv in a session of its own whose id lands in pidfile (inside the container)."""
    return ["setsid", "-w", "sh", "-c", WRAPPER, pidfile, *argv]


def exec_argv(
    container: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    interactive: bool = False,
    docker: str = "docker",
) -> list[str]:
    """`docker exec [-i] [-e K=V]... [-w DIR] -- CONTAINER ARGV...`"""
    if not argv:
        raise RemoteError(container, [], "empty command")
    words = [docker, "exec"]
    if interactive:
        words.append("-i")
    for assignment in env_assignments(env):
        words += ["-e", assignment]
    if cwd:
        words += ["-w", cwd]
    return [*words, "--", container, *argv]


def cp_argv(src: str, dst: str, docker: str = "docker") -> list[str]:
    """`docker cp -- SRC DST` where one side is `CONTAINER:PATH` and the other a local path."""
    return [docker, "cp", "--", src, dst]


def inspect_argv(container: str, fmt: str, docker: str = "docker") -> list[str]:
    """`docker inspect -f FORMAT -- CONTAINER`."""
    return [docker, "inspect", "-f", fmt, "--", container]


def local_path(path: str) -> str:
    """An absolute local path: docker cp reads `a:b` as a container's file and `-` as stdin."""
    return os.path.abspath(path)


class PipeChannel:
    """`docker exec -i CONTAINER sh -c AGENT_SCRIPT` with the few methods of a paramiko
    channel that CommandAgent uses (timeouts by select on the pipes)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.timeout: float | None = None
        self.closed = False
        self.eof_received = False

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def _wait(self, fd: int, write: bool = False) -> None:
        r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], self.timeout)
        if not (r or w):
            raise TimeoutError

    def sendall(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            self._wait(fd, write=True)
            view = view[os.write(fd, view[: 1 << 16]) :]

    def recv(self, n: int) -> bytes:
        assert self.proc.stdout is not None
        self._wait(self.proc.stdout.fileno())
        data = os.read(self.proc.stdout.fileno(), n)
        if not data:
            self.eof_received = True
        return data

    def recv_stderr(self, n: int) -> bytes:
        assert self.proc.stderr is not None
        self._wait(self.proc.stderr.fileno())
        return os.read(self.proc.stderr.fileno(), n)

    def exit_status_ready(self) -> bool:
        return self.proc.poll() is not None

    def close(self) -> None:
        """End of input ends the agent (it then removes its directory); the client is killed
        if it does not exit by itself."""
        if self.closed:
            return
        self.closed = True
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class DockerRemote(Remote):
    """One container; `container` defaults to the node's name, and is validated here (so every
    way of selecting nodes, --nodes, a nodes file or the API, gets the same check)."""

    def __init__(self, node: Node, container: str | None = None, docker: str = "docker"):
        self.node = node
        self.container = validate_container(node.name, container or node.name)
        self.docker = docker
        self._lock = threading.Lock()
        self._idle: list[CommandAgent] = []
        #: set when no agent starts in this container: one docker exec per command
        self._no_agent = False

    def run(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        if not argv:
            raise RemoteError(self.node.name, [], "empty command")
        self._need_cli(argv)
        shown = list(argv)
        agent = None if self._no_agent else self._take_agent(shown, max(timeout, 10.0))
        if agent is None:
            res = self._run_plain(argv, timeout, input, env, cwd)
        else:
            try:
                res = agent.run(command_line(argv, env, cwd), input, timeout)
            except AgentTimeout as e:
                agent.close()
                self._kill_group(e.pgid)
                raise RemoteTimeout(
                    self.node.name, shown, f"timed out after {timeout:g}s"
                ) from None
            except (OSError, EOFError, ValueError, IndexError) as e:
                agent.close()
                self._check_container(shown)
                raise RemoteError(
                    self.node.name, shown, f"docker exec session lost ({e})"
                ) from None
            self._give_agent(agent)
        if check and res.exit != 0:
            raise RemoteError(self.node.name, shown, exit_failure(res), res)
        return res

    def _take_agent(self, shown: list[str], timeout: float) -> CommandAgent | None:
        with self._lock:
            idle = pop_usable(self._idle)
        if idle is not None:
            return idle
        argv = exec_argv(
            self.container, ["sh", "-c", AGENT_SCRIPT], interactive=True, docker=self.docker
        )
        try:
            return CommandAgent.ready(PipeChannel(argv), timeout)
        except AgentRefused as e:
            self._classify(Result(1, "", e.stderr), shown)  # no such container, engine down
            self._no_agent = True
            return None
        except OSError as e:
            raise RemoteError(self.node.name, shown, f"docker exec did not start ({e})") from None

    def _give_agent(self, agent: CommandAgent) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_AGENTS and agent.usable():
                self._idle.append(agent)
                return
        agent.close()

    def _kill_group(self, pgid: int | None) -> None:
        """SIGKILL a timed-out command's process group from another agent (best effort)."""
        if pgid is None:
            return
        try:
            killer = self._take_agent(["kill"], 15.0)
            if killer is not None:
                killer.kill_group(pgid, 15.0)
                self._give_agent(killer)
        except Exception:  # noqa: BLE001 - the timeout is what the caller must hear about
            pass

    def _check_container(self, shown: list[str]) -> None:
        """After a lost session: a container that went away is said as such."""
        res = run_argv(
            self.node.name,
            exec_argv(self.container, ["true"], docker=self.docker),
            timeout=30,
            check=False,
        )
        self._classify(res, shown)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for agent in idle:
            agent.close()

    def _run_plain(
        self,
        argv: Sequence[str],
        timeout: float,
        input: str | None,
        env: Mapping[str, str] | None,
        cwd: str | None,
    ) -> Result:
        """One `docker exec` for this command, under WRAPPER so that a timeout can kill it."""
        pidfile = f"/tmp/dsj-exec-{secrets.token_hex(8)}.pid"
        cmd = exec_argv(
            self.container,
            wrapped(argv, pidfile),
            env,
            cwd,
            interactive=input is not None,
            docker=self.docker,
        )
        try:
            res = run_argv(
                self.node.name, cmd, shown=list(argv), timeout=timeout, check=False, input=input
            )
        except RemoteTimeout:
            self._kill(pidfile)
            raise
        self._classify(res, list(argv))
        return res

    def _kill(self, pidfile: str) -> None:
        """Kill a timed-out command's process group inside the container (best effort: the
        timeout is what the caller hears about)."""
        argv = exec_argv(self.container, ["sh", "-c", KILLER, pidfile], docker=self.docker)
        try:
            run_argv(self.node.name, argv, timeout=15.0, check=False)
        except RemoteError:
            pass

    def put(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cp(local_path(local), f"{self.container}:{remote}", ["put", local, remote], timeout)

    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cp(f"{self.container}:{remote}", local_path(local), ["get", remote, local], timeout)

    def _cp(self, src: str, dst: str, shown: list[str], timeout: float) -> None:
        self._need_cli(shown)
        res = run_argv(
            self.node.name,
            cp_argv(src, dst, self.docker),
            shown=shown,
            timeout=timeout,
            check=False,
        )
        self._classify(res, shown)
        if res.exit != 0:
            raise RemoteError(
                self.node.name, shown, f"docker cp failed ({res.stderr.strip()[:200]})", res
            )

    def _need_cli(self, shown: Sequence[str]) -> None:
        if shutil.which(self.docker) is None:
            raise RemoteConfigError(self.node.name, list(shown), f"{self.docker} CLI not found")

    def _classify(self, res: Result, shown: list[str]) -> None:
        """docker's own failures (exit 125-127 with a daemon message) are not the command's."""
        first = res.stderr.lstrip().splitlines()[0] if res.stderr.strip() else ""
        if res.exit == 0 or not (
            first.startswith("Error response from daemon") or "Docker daemon" in first
        ):
            return
        if "No such container" in first:
            raise RemoteConfigError(
                self.node.name, "", f"container {self.container} does not exist"
            )
        if "is not running" in first:
            raise RemoteConfigError(
                self.node.name, "", f"container {self.container} is not running"
            )
        if "Cannot connect to the Docker daemon" in first:
            raise RemoteError(
                self.node.name, "", "docker engine is not answering (is dockerd running?)"
            )

    def __repr__(self) -> str:
        return f"DockerRemote({self.node.name!r}, container={self.container!r})"


def docker_engine_answers(docker: str = "docker", timeout: float = 10.0) -> str | None:
    """None when `docker info` answers, else the reason (for doctor and test skips)."""
    if shutil.which(docker) is None:
        return "docker CLI not installed"
    try:
        res = run_argv(
            "docker",
            [docker, "info", "--format", "{{.ServerVersion}}"],
            timeout=timeout,
            check=False,
        )
    except RemoteError as e:
        return str(e)
    if res.exit != 0:
        last = (res.stderr.strip() or res.stdout.strip()).splitlines()
        return f"docker engine not answering ({last[-1][:160] if last else f'exit {res.exit}'})"
    return None


def container_address(node: str, container: str, timeout: float = 30.0) -> str:
    """The container's IP on its (first) docker network, which the controller can reach."""
    probe = DockerRemote(Node(node, "", "/"), container)
    try:
        probe.run(["true"], timeout=timeout)  # clear errors: no such container, engine down
    finally:
        probe.close()
    res = run_argv(
        node,
        inspect_argv(container, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"),
        timeout=timeout,
    )
    ips = res.stdout.split()
    if not ips:
        raise ConfigError(
            f"node {node}: container {container} has no IP address on a docker network"
        )
    return ips[0]


class DockerBackend(Backend):
    """Containers on this machine's docker engine: this kernel, files of their own."""

    name = "docker"
    description = "containers through docker exec: --nodes CONTAINER1,CONTAINER2,..."
    shares_kernel = True
    shares_files = False
    entry = "container name"
    metavar = "CONTAINER"
    node_keys = frozenset({"container", "address"})

    def node_spec(self, name: str, host: str, settings: NodeSettings, workdir: str) -> NodeSpec:
        container = validate_container(name, settings.get("container", str, name))
        address = settings.get("address", str, None)
        return NodeSpec(name, self.name, address or host, workdir, {"container": container})

    def open_node(self, spec: NodeSpec) -> Remote:
        container = spec.settings["container"]
        # no address given: the container's own, asked of the engine (which also says at once
        # when the container does not exist or the engine is down)
        address = spec.host if spec.host != spec.name else container_address(spec.name, container)
        node = Node(spec.name, address, spec.workdir, extra={"container": container})
        return DockerRemote(node, container)

    @classmethod
    def machine_problems(cls) -> list[tuple[str, str | None, str]]:
        return [("docker engine", docker_engine_answers(), "answers")]
