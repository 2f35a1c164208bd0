"""A lease on object storage that needs no extra service: numbered generations, each created
exclusively, so of several runs racing for the next generation exactly one wins.

`<prefix>/lease-000000042.json` holds {holder, expires}. The highest generation is the state:
held while unexpired, free once expired or released. Taking, renewing and releasing all create
the next generation, so they are atomic on S3 (If-None-Match), GCS and local disks alike, and
a holder that stalled past its expiry learns it lost the lease at its next renewal.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from musedub.infra.errors import MusedubError
from musedub.infra.storage import create_exclusive, join_uri, list_files, read_bytes, remove_tree

log = logging.getLogger(__name__)
KEEP_GENERATIONS = 3


class LeaseLost(MusedubError):
    """Another holder took the lease over: this run must stop committing work."""


@dataclass(frozen=True)
class LeaseState:
    generation: int
    holder: str
    expires: float  # unix seconds; 0 once released

    def held(self, now: float) -> bool:
        return self.expires > now


def _name(generation: int) -> str:
    return f"lease-{generation:09d}.json"


def _generations(prefix: str) -> list[int]:
    return sorted(int(n[6:15]) for n in list_files(prefix) if n.startswith("lease-") and n.endswith(".json"))


def current(prefix: str) -> LeaseState | None:
    """The latest generation under `prefix`, or None when nobody ever took the lease."""
    generations = _generations(prefix)
    if not generations:
        return None
    record = json.loads(read_bytes(join_uri(prefix, _name(generations[-1])), "lease"))
    return LeaseState(generations[-1], record["holder"], float(record["expires"]))


class Lease:
    """Held by one run; renewed from a background thread until released."""

    def __init__(self, prefix: str, holder: str, seconds: float) -> None:
        self.prefix, self.holder, self.seconds = prefix, holder, seconds
        self.generation = -1
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, expires: float) -> bool:
        body = json.dumps({"holder": self.holder, "expires": expires, "written": time.time()}).encode()
        if not create_exclusive(join_uri(self.prefix, _name(self.generation + 1)), body, "lease"):
            return False
        self.generation += 1
        return True

    def acquire(self) -> LeaseState | None:
        """Take the lease; None on success, else the state of whoever holds it."""
        now = time.time()
        state = current(self.prefix)
        if state is not None and state.held(now):
            return state
        self.generation = state.generation if state else -1
        if not self._write(now + self.seconds):
            return current(self.prefix)  # another run won the race for this generation
        for old in _generations(self.prefix):
            if old <= self.generation - KEEP_GENERATIONS:
                remove_tree(join_uri(self.prefix, _name(old)))
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renewal", daemon=True)
        self._thread.start()
        return None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            if not self._write(time.time() + self.seconds):
                log.error("lease %s was taken over by another run", self.prefix)
                self.lost.set()
                return

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"lease {self.prefix} was taken over while this run held it: stopping")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost.is_set() and not self._write(0.0):
            log.warning("lease %s: could not write the release; it frees itself when it expires", self.prefix)
