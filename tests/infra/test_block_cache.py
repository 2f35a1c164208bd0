"""The node's block cache: reads across block edges, shared blocks, identity in the key, the size cap."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from musedub.infra.block_cache import BLOCK, BlockCachedReader, _trim
from musedub.infra.errors import InputError


class CountingRemote(io.BytesIO):
    """An in-memory object that counts the bytes read from it."""

    fetched = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.fetched += len(data)
        return data


@pytest.fixture()
def content() -> bytes:
    return np.random.default_rng(0).bytes(2 * BLOCK + 1000)


def test_reads_cross_block_edges_and_blocks_are_shared_by_identity(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSEDUB_CACHE_DIR", str(tmp_path))
    first = CountingRemote(content)
    with BlockCachedReader(first, "s3://b/film.mp4", "etag:1", len(content)) as reader:
        reader.seek(BLOCK - 10)
        assert reader.read(20) == content[BLOCK - 10 : BLOCK + 10]
        reader.seek(-5, os.SEEK_END)
        assert reader.read() == content[-5:]
    assert first.fetched == 2 * BLOCK + 1000  # blocks 0 and 1, and the short last one

    again = CountingRemote(content)
    with BlockCachedReader(again, "s3://b/film.mp4", "etag:1", len(content)) as reader:
        assert reader.read() == content
    assert again.fetched == 0  # another stage on this node: every block from disk

    changed = CountingRemote(content[::-1])
    with BlockCachedReader(changed, "s3://b/film.mp4", "etag:2", len(content)) as reader:
        assert reader.read(3) == content[::-1][:3]
    assert changed.fetched == BLOCK  # a new identity never reads the old version's blocks


def test_trim_drops_the_oldest_blocks_first(tmp_path: Path) -> None:
    for age, name in enumerate(("old", "mid", "new")):
        path = tmp_path / "object" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes(100))
        os.utime(path, (age, age))
    _trim(tmp_path, 250)
    assert sorted(p.name for p in (tmp_path / "object").iterdir()) == ["mid", "new"]


class FailingRemote(io.BytesIO):
    """An object replaced after opening: s3fs's If-Match read fails with an OSError."""

    def read(self, size: int | None = -1) -> bytes:
        raise OSError("pre-conditions failed")


def test_an_object_that_fails_or_shrinks_mid_read_is_one_input_error(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSEDUB_CACHE_DIR", str(tmp_path))
    failing = BlockCachedReader(FailingRemote(), "s3://b/f.mp4", "etag:1", len(content), "video")
    with failing, pytest.raises(InputError, match="video s3://b/f.mp4 could not be read past byte 0 .* changed"):
        failing.read(10)
    short = CountingRemote(content[: BLOCK + 10])
    with BlockCachedReader(short, "s3://b/f.mp4", "etag:2", len(content), "video") as reader:
        reader.seek(BLOCK)
        with pytest.raises(InputError, match=f"ends at byte {BLOCK + 10} of {len(content)}: it was truncated"):
            reader.read(10)
