"""The folder lock and temp files on shared storage: who holds them, when they are stale,
and that a lock left by a dead process (or node) never blocks a folder for good."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from gs_backend.dataset import lock as lock_module
from gs_backend.dataset.lock import STALE_AFTER_S, file_lock, read_holder
from gs_backend.dataset.writes import STALE_TEMP_AGE_S, host_tag, temp_is_stale


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(path, host: str, pid: int, token: str = "feed", age_s: float = 0.0) -> None:
    path.write_text(json.dumps({"host": host, "pid": pid, "token": token, "since": 0}))
    past = time.time() - age_s
    os.utime(path, (past, past))


def test_a_lock_is_a_file_only_while_held(tmp_path):
    lock = tmp_path / "out" / ".gs-render.lock"
    with file_lock(lock):
        holder = read_holder(lock)
        assert holder is not None and holder.pid == os.getpid()
        assert holder.host == host_tag() and not holder.is_stale()
    assert read_holder(lock) is None and sorted(os.listdir(lock.parent)) == []


def test_a_dead_local_holder_is_taken_over_at_once(tmp_path):
    lock = tmp_path / ".gs-render.lock"
    write_lock(lock, host_tag(), dead_pid())
    assert read_holder(lock).is_stale()
    with file_lock(lock):
        assert read_holder(lock).pid == os.getpid()
    assert not lock.exists()


def test_another_hosts_lock_is_stale_only_once_it_stops_beating(tmp_path):
    lock = tmp_path / ".gs-render.lock"
    write_lock(lock, "other-node", os.getpid(), age_s=STALE_AFTER_S / 3)
    assert not read_holder(lock).is_stale()  # a live holder touches it every few seconds
    write_lock(lock, "other-node", os.getpid(), age_s=STALE_AFTER_S + 5)
    assert read_holder(lock).is_stale()  # that node died
    with file_lock(lock):
        assert read_holder(lock).pid == os.getpid()


def test_an_old_flock_file_does_not_block(tmp_path):
    """Folders of earlier versions have an empty ``.gs-render.lock`` (flock's file)."""
    lock = tmp_path / ".gs-render.lock"
    lock.write_text("")
    with file_lock(lock):
        assert read_holder(lock).pid == os.getpid()


def test_breaking_a_lock_that_was_meanwhile_retaken_gives_it_back(tmp_path):
    """Two processes judge the same dead lock: the first breaks it and takes the folder,
    the second's rename then moves the new, live lock; it must put it back."""
    lock = tmp_path / ".gs-render.lock"
    write_lock(lock, host_tag(), dead_pid(), token="dead")
    judged = read_holder(lock)
    write_lock(lock, host_tag(), os.getpid(), token="live")  # broken and retaken
    lock_module._break(lock, judged)
    assert read_holder(lock).token == "live"
    lock_module._break(lock, read_holder(lock))  # the judged lock itself: removed
    assert not lock.exists() and sorted(os.listdir(tmp_path)) == []


def test_the_holder_keeps_its_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.01)
    lock = tmp_path / ".gs-render.lock"
    with file_lock(lock):
        past = time.time() - 3600
        os.utime(lock, (past, past))
        deadline = time.monotonic() + 60
        while read_holder(lock).age_s > 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert read_holder(lock).age_s < 60


def test_temp_files_of_dead_local_writers_are_stale_at_once(tmp_path):
    dead = tmp_path / f".frame.png~{host_tag()}~{dead_pid()}~ab12.tmp"
    live = tmp_path / f".frame.png~{host_tag()}~{os.getpid()}~ab12.tmp"
    remote = tmp_path / f".frame.png~other-node~{os.getpid()}~ab12.tmp"
    for tmp in (dead, live, remote):
        tmp.write_bytes(b"partial")
    assert temp_is_stale(dead)
    assert not temp_is_stale(live) and not temp_is_stale(remote)
    later = time.time() + STALE_TEMP_AGE_S + 1
    assert temp_is_stale(remote, now=later)  # another host's: by age only
