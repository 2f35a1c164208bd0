"""Eval's tests run torch on one thread, as eval's actors do (map_items): two threads over many small
convolutions spend more time waiting on each other than computing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
