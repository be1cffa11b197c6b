"""`--progress bar`: a tqdm bar when stderr is a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys

import pytest

from tests.scenario_factory import write_scenario

pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX only")
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")


def run_with_stderr_on_a_terminal(args: list[str], size: tuple[int, int]) -> tuple[int, str]:
    """Run ``python -m gs_backend ARGS`` with stderr on a pseudo-terminal of ``size``
    (lines, columns; (0, 0): one that reports no size); return (exit code, output)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    env = {key: value for key, value in os.environ.items()
           if key not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "gs_backend", *args],
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("size", [(24, 100), (0, 0)])
def test_bar_on_a_terminal(tmp_path, size):
    scenario = write_scenario(tmp_path)
    code, text = run_with_stderr_on_a_terminal(
        ["render", str(scenario), "--out", str(tmp_path / "out"), "--device", "cpu",
         "--progress", "bar"], size)
    assert code == 0, text
    assert "render:" in text and "4/4" in text and "frame" in text  # tqdm's bar
    assert re.search("\r(?!\n)", text)  # redrawn in place (a bare carriage return)
    assert "[1/4]" not in text
    assert "done: 4/4 frames" in text


def test_plain_lines_when_not_a_terminal(tmp_path):
    scenario = write_scenario(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "gs_backend", "render", str(scenario), "--out",
         str(tmp_path / "out"), "--device", "cpu", "--progress", "bar"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "\r" not in proc.stderr
    assert lines[-1].startswith("done: 4/4 frames")


def test_jsonl_progress_writes_protocol_lines():
    """One line per event, flushed, that the protocol's reader gives back unchanged."""
    import io

    from gs_backend.progress import JsonlProgress
    from gs_contract.protocol import DoneEvent, FrameEvent, LogEvent, decode_event

    events = [FrameEvent(done=1, total=2, name="frame_0001", split="train", instances=1,
                         seconds=0.1),
              LogEvent("warning", "careful"),
              DoneEvent(out="/o", frames_total=2, frames_selected=2, frames_rendered=2,
                        frames_skipped=0, frames_done=2, labelled_instances=1, seconds=0.2)]
    stream = io.StringIO()
    progress = JsonlProgress(stream)
    for event in events:
        progress.emit(event)
    assert [decode_event(line) for line in stream.getvalue().splitlines()] == events


def test_text_progress_quiet_mode_keeps_warnings_only():
    import io

    from gs_backend.progress import TextProgress
    from gs_contract.protocol import ErrorEvent, FrameEvent, LogEvent, StartEvent

    stream = io.StringIO()
    progress = TextProgress(bar=False, stream=stream)
    progress.emit(StartEvent(total=2, skipped=1))
    progress.emit(FrameEvent(done=2, total=2, name="frame_0002"))
    progress.emit(LogEvent("info", "chatter"))
    progress.emit(LogEvent("warning", "careful"))
    progress.emit(ErrorEvent("broken"))
    assert stream.getvalue().splitlines() == ["warning: careful", "error: broken"]
