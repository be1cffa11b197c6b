"""A local sidecar: ``gs-backend serve`` started by the add-on itself (no bpy here).

The process is started from the Backend Command preference exactly like a dataset
render (:func:`.backend_process.backend_argv`), and handled by the same machinery
(:class:`.backend_process.BackendJob`: its own process group, stderr tail, stopping the
whole group), with two differences: a line of stdout is searched for the ``listening``
line (:func:`gs_contract.sidecar.parse_listening_line`) instead of progress events, and
the token file lives in a private temporary folder that :meth:`LocalSidecar.stop`
removes.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from gs_contract.sidecar import Listening, SidecarMessageError, parse_listening_line

from .backend_process import BackendJob, backend_argv, backend_env

STOP_GRACE_S = 5.0
"""After Ctrl-C (SIGINT to its process group): seconds the sidecar may take to stop
its jobs cleanly before it is terminated."""


def serve_argv(prefix: Sequence[str], token_file: str | Path, *, device: str = "auto",
               port: int = 0) -> list[str]:
    """``PREFIX serve --host 127.0.0.1 --port PORT --device D --token-file F``."""
    return [*prefix, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--device", device.lower(), "--token-file", str(token_file)]


class LocalSidecar(BackendJob):
    """A running ``gs-backend serve`` child. ``listening`` is set once its listening
    line has arrived (``info`` then holds it); ``poll()`` tells when it has exited."""

    def __init__(self, argv: Sequence[str], token_dir: Path) -> None:
        self.listening = threading.Event()
        self.info: Listening | None = None
        self.line_error: str | None = None
        self.token_dir = token_dir
        super().__init__(argv, env=backend_env())

    @classmethod
    def start(cls, command: str | None, *, device: str = "auto") -> LocalSidecar:
        """Start ``command serve`` on a free loopback port.

        Raises:
            BackendError: the backend cannot be started.
        """
        prefix = backend_argv(command)
        token_dir = Path(tempfile.mkdtemp(prefix="gsds-sidecar-"))  # mode 0700
        try:
            return cls(serve_argv(prefix, token_dir / "token", device=device), token_dir)
        except BaseException:
            shutil.rmtree(token_dir, ignore_errors=True)
            raise

    def _stdout_line(self, line: str) -> None:
        if self.listening.is_set():
            return
        try:
            info = parse_listening_line(line)
        except SidecarMessageError as exc:
            self.line_error = f"the sidecar printed a bad listening line ({exc})"
            return
        if info is not None:
            self.info = info
            self.listening.set()

    def _check_result(self) -> str | None:
        return None  # a sidecar has no output folder to check

    @property
    def running(self) -> bool:
        """The process has not exited (as far as the last :meth:`poll` knows)."""
        return not self.poll().finished

    def exit_message(self) -> str:
        """Why the sidecar is not running (after it has exited), one sentence."""
        state = self.state
        detail = self.line_error or state.error or f"exit code {state.returncode}"
        return f"the local sidecar ({self.argv[0]} serve) stopped: {detail}"

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop the whole process group (Ctrl-C, then terminate, then kill) and wait for
        it; remove the token folder. Blocking, for unregister and quit."""
        try:
            if not self.poll().finished:
                self.cancel(interrupt_grace=grace)
        finally:
            shutil.rmtree(self.token_dir, ignore_errors=True)
