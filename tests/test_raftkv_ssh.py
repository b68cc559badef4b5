"""RaftKvTarget over a real SSH backend: a real sshd inside a namespace node (conftest's
`ssh_server`), the package uploaded by SFTP and run with the node's /usr/bin/python3, which has
no dsjepsen installed. A one-node cluster, because the fixture runs one sshd."""

from __future__ import annotations

import time

import pytest

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.daemon import daemon_running, fetch_files
from dsjepsen.history import Op

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def op(f: str, key: int, value: object = None) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f=f, key=key, value=value)


def test_raftkv_target_over_ssh(ssh_server, tmp_path):
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    remote = ssh_server.remote()
    node = ssh_server.node
    cluster = Cluster(kind="ssh", nodes=[node], remotes={node.name: remote}, name="ssh")
    # the system's Python, not the one this test runs under (which has dsjepsen installed)
    target = RaftKvTarget(election_timeout_ms=150, python="/usr/bin/python3")
    try:
        target.setup(cluster)
        # the node's own python3 (not this interpreter) runs the uploaded copy
        pid = target.pid(cluster, node.name)
        exe = remote.run(["readlink", f"/proc/{pid}/exe"], timeout=30).stdout.strip()
        assert exe.startswith("/usr/bin/python3"), exe
        argv = target.argv(cluster, node)
        assert argv[:3] == ["/usr/bin/python3", "-m", "raft_kv.server"]
        no_dsjepsen = remote.run(
            ["/usr/bin/python3", "-c", "import dsjepsen"], timeout=30, check=False
        )
        assert no_dsjepsen.exit != 0, "the node should not have dsjepsen: the test would prove less"

        client = target.client(cluster, node.name)
        assert client.invoke(op("write", 1, 7)).type == "ok"
        assert client.invoke(op("cas", 1, [7, 8])).type == "ok"
        # kill over SSH, restart over SSH: the value comes back from the node's disk
        target.kill(cluster, node.name)
        assert not daemon_running(remote, target.pid_file(node))
        assert client.invoke(op("read", 1)).type in ("fail", "info")
        target.start(cluster, node.name)
        poll_ok = None
        for _ in range(300):
            poll_ok = client.invoke(op("read", 1))
            if poll_ok.type == "ok":
                break
            time.sleep(0.1)
        assert poll_ok is not None and (poll_ok.type, poll_ok.value) == ("ok", 8)
        # pause: the process stops answering (info: the request was sent), resume: it answers
        target.pause(cluster, node.name)
        slow = target.client(cluster, node.name)
        slow.timeout = 0.5
        assert slow.invoke(op("read", 1)).type == "info"
        slow.close()
        target.resume(cluster, node.name)
        assert target.leader(cluster) == node.name
        client.close()
        got = fetch_files(remote, target.log_files(cluster, node.name), tmp_path)
        assert got and "became leader" in got[0].read_text()
    finally:
        target.teardown(cluster)
    assert remote.run(["test", "-e", target.data_dir(node)], check=False).exit != 0
