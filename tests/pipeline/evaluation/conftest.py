"""Eval's tests run torch on one thread, as eval's actors do (map_items): two threads over many small
convolutions spend more time waiting on each other than computing."""

import pytest


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread: None) -> None:
    """Every test here takes the root conftest's `one_thread`."""
