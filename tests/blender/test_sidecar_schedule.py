"""Debounce and "latest request wins", stepped by hand: a fake clock, and a thread
starter that keeps the work until the test runs it (no sleeps, no real threads)."""

from __future__ import annotations

import threading

from blender_addon.core.sidecar_schedule import Debouncer, LatestWins


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Steps:
    """A thread starter: ``run(i)`` executes the i-th started work item."""

    def __init__(self) -> None:
        self.work: list = []

    def __call__(self, target) -> None:
        self.work.append(target)

    def run(self, index: int) -> None:
        self.work[index]()


def test_debounce_waits_for_quiet():
    clock = FakeClock()
    debounce = Debouncer(delay=0.25, max_wait=1.0, clock=clock)
    assert not debounce.dirty and not debounce.due()
    debounce.mark()
    assert debounce.dirty and not debounce.due()
    clock.now += 0.2
    debounce.mark()  # another change: the quiet period starts again
    clock.now += 0.2
    assert not debounce.due()
    clock.now += 0.05
    assert debounce.due()
    debounce.clear()
    assert not debounce.dirty and not debounce.due()


def test_debounce_max_wait_while_changes_keep_coming():
    clock = FakeClock()
    debounce = Debouncer(delay=0.25, max_wait=1.0, clock=clock)
    debounce.mark()
    for _ in range(7):  # a change every 0.125 s: never quiet
        clock.now += 0.125
        debounce.mark()
        assert not debounce.due()
    clock.now += 0.125  # 1.0 s since the first change
    assert debounce.due()


def test_one_request_runs_and_its_result_is_shown():
    steps = Steps()
    latest = LatestWins(lambda payload: payload * 2, start_thread=steps)
    assert latest.collect() is None and not latest.busy
    seq = latest.submit(21)
    assert latest.busy and len(steps.work) == 1
    assert latest.collect() is None  # not finished yet
    steps.run(0)
    outcome = latest.collect()
    assert (outcome.seq, outcome.result, outcome.error) == (seq, 42, None)
    assert not latest.busy and latest.collect() is None


def test_newer_request_supersedes_the_one_in_flight():
    steps = Steps()
    ran: list[int] = []

    def run(payload: int) -> int:
        ran.append(payload)
        return payload

    latest = LatestWins(run, start_thread=steps)
    latest.submit(1)
    latest.submit(2)  # waits: one request at a time
    latest.submit(3)  # replaces 2, which never runs
    assert len(steps.work) == 1
    steps.run(0)  # request 1 finishes: its result is stale
    assert latest.collect() is None
    assert latest.dropped == 1
    assert len(steps.work) == 2  # collect() started the waiting request (3)
    steps.run(1)
    outcome = latest.collect()
    assert (outcome.seq, outcome.result) == (3, 3)
    assert ran == [1, 3]
    assert not latest.busy


def test_result_of_a_superseded_request_is_dropped_even_if_it_finishes_last():
    steps = Steps()
    latest = LatestWins(lambda payload: payload, start_thread=steps)
    latest.submit("old")
    steps.run(0)
    latest.submit("new")  # "old" finished but was not collected yet
    assert latest.collect() is None  # "old" dropped; "new" starts now
    assert latest.dropped == 1
    steps.run(1)
    assert latest.collect().result == "new"


def test_errors_are_handed_over_not_raised():
    steps = Steps()

    def fail(payload: int) -> int:
        raise ValueError(f"bad {payload}")

    latest = LatestWins(fail, start_thread=steps)
    latest.submit(7)
    steps.run(0)
    outcome = latest.collect()
    assert outcome.result is None and isinstance(outcome.error, ValueError)
    assert str(outcome.error) == "bad 7"


def test_wait_blocks_until_the_latest_result_with_real_threads():
    gate = threading.Event()

    def run(payload: int) -> int:
        gate.wait(30)
        return payload

    latest = LatestWins(run)
    latest.submit(1)
    latest.submit(2)
    gate.set()
    outcome = latest.wait(timeout=30)
    assert outcome is not None and outcome.result == 2
    assert latest.dropped == 1
    assert latest.wait(timeout=30) is None  # nothing pending


def test_wait_gives_up_after_its_timeout():
    gate = threading.Event()
    latest = LatestWins(lambda payload: gate.wait(30))
    latest.submit(1)
    assert latest.wait(timeout=0.0) is None
    assert latest.busy
    gate.set()
    assert latest.wait(timeout=30).seq == 1
