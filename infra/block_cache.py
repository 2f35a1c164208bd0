"""Remote media read in fixed blocks kept on the node's local disk, so each byte of an object
leaves object storage about once per node, whichever stage or process reads it.

A job reads its video several times: the probe demuxes it whole, tracking decodes it, and the
crop and blend stages decode each segment again. Read straight from object storage that is 4x
the file or more (and each open's read-ahead on top). Here every read is served from
`BLOCK`-aligned blocks: a block missing from the cache is fetched with one ranged GET and
written atomically, so processes on one node share blocks without locks (a race fetches a block
twice, never a torn one). Blocks are keyed by the object's URI and identity (ETag or size and
mtime), so a changed object never reads stale bytes. The cache is bounded
(`MUSEDUB_CACHE_BYTES`, oldest blocks go first) and lives in `MUSEDUB_CACHE_DIR` (default: the
temporary folder).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO

from musedub.infra.errors import InputError

BLOCK = 4 * 2**20
DEFAULT_CAP = 8 * 2**30
TRIM_EVERY = 32  # blocks written between two size checks of the whole cache


def cache_root() -> Path:
    return Path(os.environ.get("MUSEDUB_CACHE_DIR") or Path(tempfile.gettempdir()) / "musedub-blocks")


def cache_cap() -> int:
    return int(os.environ.get("MUSEDUB_CACHE_BYTES") or DEFAULT_CAP)


_written = 0


def _trim(root: Path, cap: int) -> None:
    """Delete the least recently written blocks until the cache holds at most `cap` bytes."""
    blocks = []
    for path in root.glob("*/*"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        blocks.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in blocks)
    for _, size, path in sorted(blocks):
        if total <= cap:
            return
        path.unlink(missing_ok=True)
        total -= size


def _store(path: Path, data: bytes) -> None:
    global _written
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _written += 1
    if _written % TRIM_EVERY == 0:
        _trim(path.parent.parent, cache_cap())


class BlockCachedReader(io.RawIOBase):
    """A seekable, read-only view of a remote object of `size` bytes whose blocks come from the
    local cache, else from `remote` (an fsspec file opened without read-ahead)."""

    def __init__(self, remote: IO[bytes], uri: str, identity: str, size: int, what: str = "input") -> None:
        super().__init__()
        self.identity = identity
        self._uri, self._what = uri, what
        self._remote = remote
        self._size = size
        name = hashlib.sha256(f"{uri}\n{identity}\n{size}".encode()).hexdigest()[:40]
        self._folder = cache_root() / name
        self._position = 0
        self._held: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def _block(self, index: int) -> bytes:
        if self._held[0] == index:
            return self._held[1]
        path = self._folder / str(index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = self._fetch(index)
            _store(path, data)
        self._held = (index, data)
        return data

    def _fetch(self, index: int) -> bytes:
        """Block `index` from object storage; InputError when the object changed or shrank meanwhile."""
        want = min(BLOCK, self._size - index * BLOCK)
        try:  # s3fs sends the ETag it opened with (If-Match): a replaced object fails here
            self._remote.seek(index * BLOCK)
            data = self._remote.read(want)
        except OSError as exc:
            raise InputError(
                f"{self._what} {self._uri} could not be read past byte {index * BLOCK} ({type(exc).__name__}): "
                "it changed or became unreachable while its job ran; run the job again"
            ) from None
        if len(data) != want:
            raise InputError(
                f"{self._what} {self._uri} ends at byte {index * BLOCK + len(data)} of {self._size}: "
                "it was truncated while its job ran; run the job again"
            )
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` from as many blocks as it spans (short only at the end of the object)."""
        done = 0
        while done < len(buffer) and self._position < self._size:
            index, offset = divmod(self._position, BLOCK)
            data = self._block(index)
            count = min(len(buffer) - done, len(data) - offset)
            buffer[done : done + count] = data[offset : offset + count]
            self._position += count
            done += count
        return done

    def close(self) -> None:
        self._held = (-1, b"")
        super().close()
