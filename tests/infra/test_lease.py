"""The object-storage lease: one holder at a time, free again on release or expiry, and a holder
that was taken over finds out."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from musedub.infra.lease import Lease, LeaseLost, current


@pytest.fixture(params=["local", "s3"])
def prefix(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/catalog/.lease"
    return str(tmp_path / "lease")


def test_one_of_many_racing_runs_gets_the_lease(prefix: str) -> None:
    leases = [Lease(prefix, f"run{i}", 60) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda lease: lease.acquire(), leases))
    winners = [lease for lease, held in zip(leases, results, strict=True) if held is None]
    assert len(winners) == 1
    assert all(held.holder == winners[0].holder for held in results if held is not None)
    winners[0].release()
    state = current(prefix)
    assert state is not None and not state.held(time.time())
    assert Lease(prefix, "next", 60).acquire() is None  # released: the next run takes it


def test_an_expired_lease_is_taken_over_and_its_holder_learns_it(prefix: str) -> None:
    stalled = Lease(prefix, "stalled", 0.3)
    assert stalled.acquire() is None
    stalled._stop.set()  # a run that stopped renewing (a hung node)
    stalled._thread.join()  # type: ignore[union-attr]
    assert Lease(prefix, "early", 60).acquire() is not None
    time.sleep(0.4)
    taker = Lease(prefix, "taker", 60)
    assert taker.acquire() is None
    assert not stalled._write(time.time() + 60)  # its next renewal fails...
    stalled.lost.set()
    with pytest.raises(LeaseLost, match="taken over"):
        stalled.check()  # ...and the run stops before committing more
    held = current(prefix)
    assert held is not None and held.holder == "taker" and held.held(time.time())
    taker.release()


def test_a_held_lease_is_renewed_while_the_run_lasts(prefix: str) -> None:
    lease = Lease(prefix, "long run", 0.6)
    assert lease.acquire() is None
    time.sleep(1.0)  # past the first expiry: renewals every 0.2 s keep it held
    state = current(prefix)
    assert state is not None and state.holder == "long run" and state.held(time.time())
    assert state.generation >= 2
    lease.check()
    lease.release()
