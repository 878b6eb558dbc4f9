"""Stopping a run cleanly: SIGINT/SIGTERM become a flag the loop reads, and the run ends with a checkpoint."""
from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("auxrnn.train")


class StopSignals:
    """SIGINT/SIGTERM set a flag that the loop reads between steps (a second SIGINT interrupts at once)."""

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: stopping with a checkpoint", signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
