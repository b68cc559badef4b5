"""The docker node image on a machine that has never built it: the root file system is built
from Debian's packages into an empty cache, imported under a name of its own and a container
started from it. What a broken or interrupted build left in the cache (a directory at the
tar's name, an empty file, a `.part`) is removed and rebuilt, with one log line each.

The build test downloads and unpacks Debian's packages once (about a minute here); it is
slow but never skipped where the docker engine runs, because a machine that already holds the
image would otherwise hide a broken build (issue: the first fresh machine failed here)."""

from __future__ import annotations

import io
import logging
import os
import secrets
import tarfile
from pathlib import Path

import pytest

from dsjepsen.cluster import docker_cluster
from dsjepsen.cluster.docker_cluster import _cache_entry_problem, cached_rootfs
from dsjepsen.errors import ConfigError


def _small_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as t:
        data = b"hello\n"
        info = tarfile.TarInfo("etc/hello")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return path


def test_cache_entries_that_cannot_be_a_node_image_are_named(tmp_path):
    assert _cache_entry_problem(tmp_path / "absent.tar") is None
    assert _cache_entry_problem(_small_tar(tmp_path / "good.tar")) is None
    (tmp_path / "dir.tar").mkdir()
    assert _cache_entry_problem(tmp_path / "dir.tar") == "a directory, not a tar file"
    (tmp_path / "empty.tar").write_bytes(b"")
    assert _cache_entry_problem(tmp_path / "empty.tar") == "an empty file"
    (tmp_path / "text.tar").write_text("not a tar at all\n" * 100)
    assert _cache_entry_problem(tmp_path / "text.tar") == "not a tar archive"
    os.mkfifo(tmp_path / "fifo.tar")
    assert _cache_entry_problem(tmp_path / "fifo.tar") == "not a regular file"
    (tmp_path / "link.tar").symlink_to(tmp_path / "good.tar")
    assert _cache_entry_problem(tmp_path / "link.tar") == "not a regular file"


def test_a_usable_cached_tar_is_returned_without_building(tmp_path, monkeypatch):
    dest = _small_tar(tmp_path / "node-rootfs-bookworm.tar")
    # a build here would fail: neither builder can be found
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert cached_rootfs(dest) == dest
    assert docker_cluster.build_rootfs(dest) == dest


def test_broken_entries_are_removed_before_the_build_says_what_it_lacks(
    tmp_path, monkeypatch, caplog
):
    """With no builder installed the build must fail with one line, and still have removed
    the broken entries (so the next build, with a builder, starts clean)."""
    dest = tmp_path / "node-rootfs-bookworm.tar"
    dest.write_bytes(b"")
    (tmp_path / "node-rootfs-bookworm.tar.part").mkdir()
    (tmp_path / "node-rootfs-bookworm.part.tar").write_bytes(b"half")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with (
        caplog.at_level(logging.WARNING, logger="dsjepsen.docker"),
        pytest.raises(ConfigError, match="neither mmdebstrap nor debootstrap"),
    ):
        docker_cluster.build_rootfs(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rootfs.lock"]
    removed = [r.getMessage() for r in caplog.records]
    assert len(removed) == 3, removed
    assert any("an empty file" in m for m in removed)
    assert sum("interrupted build" in m for m in removed) == 2


@pytest.mark.slow
@pytest.mark.cluster
def test_node_image_builds_from_nothing_and_runs_a_container(docker_engine, tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    dest = cache / f"node-rootfs-{docker_cluster.SUITE}.tar"
    # what the broken build of the past left: a directory at the tar's name, and a .part
    (dest / "etc").mkdir(parents=True)
    (cache / f"{dest.name}.part").mkdir()
    image = f"dsj-test-{secrets.token_hex(3)}:{docker_cluster.SUITE}"
    name = "dsj-i" + secrets.token_hex(3)
    assert not docker_cluster.image_present(image)
    try:
        with caplog.at_level(logging.INFO, logger="dsjepsen.docker"):
            assert docker_cluster.ensure_image(image, rootfs=dest) == image
        messages = [r.getMessage() for r in caplog.records]
        assert any("a directory, not a tar file" in m for m in messages), messages
        assert any("interrupted build" in m for m in messages), messages
        assert dest.is_file() and tarfile.is_tarfile(dest)
        assert cached_rootfs(dest) == dest
        assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [dest.name]
        assert docker_cluster.image_present(image)

        names = docker_cluster.up(name, 1, image=image)
        res = docker_cluster.docker_cmd(
            "docker", "exec", "--", names[0], "sh", "-c",
            "python3 -c 'import sys; print(sys.version_info >= (3, 11))' && "
            "ip -4 -o addr show eth0 && iptables -S && ps -o pid= -p 1 && "
            "command -v fusermount3",
        )  # fmt: skip
        lines = res.stdout.splitlines()
        assert lines[0] == "True", res.stdout
        assert lines[-1].endswith("/fusermount3"), res.stdout  # the disk faults' file system
        assert " inet " in lines[1], res.stdout
        assert "-P INPUT ACCEPT" in res.stdout, res.stdout
    finally:
        docker_cluster.down(name)
        docker_cluster.docker_cmd("docker", "image", "rm", "-f", "--", image, check=False)
    assert not docker_cluster.image_present(image)
    assert docker_cluster.remains(name) == []
