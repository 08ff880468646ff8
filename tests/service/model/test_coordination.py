"""`PeerChannel` built in-process: how a reload reaches every worker of a task, through files in
one shared directory, with dead workers never waited for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from service.model.coordination import PeerChannel, remove_worker


def a_dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_an_announcement_is_seen_by_every_peer_with_a_new_stamp(tmp_path: Path) -> None:
    one, two = PeerChannel(tmp_path, pid=os.getpid()), PeerChannel(tmp_path, pid=os.getppid())
    assert two.target() is None
    one.announce("v1", "a" * 64)
    first = two.target()
    assert first is not None
    assert (first.version, first.manifest_sha256) == ("v1", "a" * 64)
    one.announce("v2", "b" * 64)
    second = two.target()
    assert second is not None
    assert second.version == "v2"
    assert second.stamp != first.stamp  # what a peer watches for


def test_a_reload_waits_until_every_live_worker_confirms(tmp_path: Path) -> None:
    me, peer = PeerChannel(tmp_path, pid=os.getpid()), PeerChannel(tmp_path, pid=os.getppid())
    me.confirm("v1")
    peer.confirm("v0")

    async def scenario() -> tuple[tuple[int, int], tuple[int, int]]:
        waiting = asyncio.create_task(me.wait_for("v1", timeout=5.0))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # the peer still serves v0
        peer.confirm("v1")
        confirmed = await waiting
        missed = await me.wait_for("v2", timeout=0.1)
        return confirmed, missed

    confirmed, missed = asyncio.run(scenario())
    assert confirmed == (2, 2)
    assert missed == (0, 2)  # the timeout passed: said, not hidden


def test_dead_and_departed_workers_are_not_waited_for(tmp_path: Path) -> None:
    me = PeerChannel(tmp_path, pid=os.getpid())
    me.confirm("v1")
    PeerChannel(tmp_path, pid=a_dead_pid()).confirm("v0")  # a worker that died uncleanly
    leaving = PeerChannel(tmp_path, pid=os.getppid())
    leaving.confirm("v0")
    leaving.leave()
    assert me.served_versions() == {os.getpid(): "v1"}
    remove_worker(tmp_path, os.getpid())
    assert me.served_versions() == {}


def test_a_half_written_or_foreign_file_is_skipped(tmp_path: Path) -> None:
    me = PeerChannel(tmp_path, pid=os.getpid())
    (tmp_path / "target.json").write_text("{not json")
    (tmp_path / "worker-1.json").write_text("")
    assert me.target() is None
    assert me.served_versions() == {}
