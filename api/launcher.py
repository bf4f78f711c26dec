"""Campaign engines started by the API, each in its own process.

`POST /api/campaigns` and `.../resume` must not run a campaign inside the request: the engine
starts Ray, a sandbox pool and a proposer, and runs for hours. The launcher starts
`python -m api.cli run --resume ID --quiet` as a child process (the same code path as the CLI, so a
campaign started from the API and one started from a terminal behave alike), logs its output to
`LOG_DIR/campaign-ID.log`, and watches it: a child that exits with an error while its campaign is
still marked PENDING or RUNNING (killed, out of memory) is reported through `on_exit`, which marks
the campaign FAILED with the exit code and the log's path, so nothing sits RUNNING forever (unless
another engine owns it: a child refused by the campaign's lease leaves the owner alone).

One campaign never has two engines: the archive's lease refuses a second one, wherever it runs,
and a resume that arrives while the previous child of the campaign is still winding down waits
for it to exit first instead of being refused. On shutdown the app pauses the campaigns of its
children through the archive and `close` waits for them (interrupting, then killing, what does
not stop in time); all state is in the archive, so a paused campaign resumes where it left off,
from this server or any other. A child whose server dies without a shutdown (SIGKILL) notices
that its parent is gone and pauses itself (discovery/lease.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ExitHandler = Callable[[int, int, Path, int], None]  # (campaign id, exit code, log file, pid)

_STOP_GRACE_S = 20.0  # SIGINT first (the engine saves its state), then SIGKILL


class Launcher:
    """Starts and watches one engine process per campaign."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        on_exit: ExitHandler | None = None,
        python: str = sys.executable,
    ) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.on_exit = on_exit
        self.python = python
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def running(self, campaign_id: int) -> bool:
        """Is an engine process of this launcher alive for the campaign?"""
        with self._lock:
            child = self._children.get(campaign_id)
            return child is not None and child.poll() is None

    def start(self, campaign_id: int) -> None:
        """Start an engine for the campaign (after the previous one, if it is still exiting)."""
        with self._lock:
            previous = self._children.get(campaign_id)
        if previous is not None and previous.poll() is None:
            threading.Thread(
                target=self._start_after,
                args=(campaign_id, previous),
                name=f"lossforge-launch-{campaign_id}",
                daemon=True,
            ).start()
            return
        self._spawn(campaign_id)

    def _start_after(self, campaign_id: int, previous: subprocess.Popen[bytes]) -> None:
        previous.wait()
        self._spawn(campaign_id)

    def _spawn(self, campaign_id: int) -> None:
        with self._lock:
            if self._closed:
                return
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"campaign-{campaign_id}.log"
            with log_path.open("ab") as log_file:
                child = subprocess.Popen(
                    [
                        self.python,
                        "-m",
                        "api.cli",
                        "run",
                        "--resume",
                        str(campaign_id),
                        "--quiet",
                        "--launched",
                    ],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    # Its own process group: a Ctrl-C meant for `lossforge serve` does not reach
                    # it, and `close` can stop it with everything it started.
                    start_new_session=True,
                )
            self._children[campaign_id] = child
        log.info(
            "campaign %s: engine process %s started (log %s)", campaign_id, child.pid, log_path
        )
        threading.Thread(
            target=self._watch,
            args=(campaign_id, child, log_path),
            name=f"lossforge-watch-{campaign_id}",
            daemon=True,
        ).start()

    def _watch(self, campaign_id: int, child: subprocess.Popen[bytes], log_path: Path) -> None:
        code = child.wait()
        log.info("campaign %s: engine process %s exited with %s", campaign_id, child.pid, code)
        if code != 0 and self.on_exit is not None and not self._closed:
            try:
                self.on_exit(campaign_id, code, log_path, child.pid)
            except Exception:  # the watcher must not die silently; the log keeps the reason
                log.exception("campaign %s: recording the engine's exit failed", campaign_id)

    def live(self) -> list[int]:
        """Campaigns whose engine process is alive."""
        with self._lock:
            return [cid for cid, child in self._children.items() if child.poll() is None]

    def close(self, *, grace_s: float = _STOP_GRACE_S) -> None:
        """Wait up to `grace_s` for the children (told to stop through the archive), then
        interrupt them (the engine leaves its queue resumable) and, if need be, kill them."""
        with self._lock:
            self._closed = True
            children = list(self._children.values())
        for child in children:
            try:
                child.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGINT)
        for child in children:
            if child.poll() is None:
                _signal_group(child, signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait()


def _signal_group(child: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)
