"""fsspec URIs: validation before use, reading, and writes that never leave a partial object.

Credentials are resolved by fsspec/s3fs from the environment or instance roles; nothing here
reads, logs or formats them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import fsspec

from infra.errors import InputError

REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "az", "abfs", "abfss"})
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: the process's umask, restored at once


def _scheme(uri: str) -> str:
    """The URI's scheme, '' for a plain local path (a Windows drive letter never reaches here)."""
    return urlsplit(uri).scheme.lower() if "://" in uri else ""


def validate_uri(uri: str, what: str) -> str:
    """Check that `uri` is a local path or an object-store URI we support; return it unchanged."""
    if not uri or not uri.strip():
        raise InputError(f"{what} is empty: give a local path or an s3:// / gs:// URI")
    if "\x00" in uri or "\n" in uri:
        raise InputError(f"{what} {uri!r} contains control characters: give a plain path or URI")
    scheme = _scheme(uri)
    if scheme not in ("", "file") and scheme not in REMOTE_SCHEMES:
        raise InputError(
            f"{what} {uri!r} has unsupported scheme {scheme!r}: use a local path, file://, "
            f"or one of {', '.join(sorted(REMOTE_SCHEMES))}"
        )
    if scheme in REMOTE_SCHEMES and not urlsplit(uri).netloc:
        raise InputError(f"{what} {uri!r} names no bucket: write it as {scheme}://BUCKET/KEY")
    return uri


def is_local(uri: str) -> bool:
    return _scheme(uri) in ("", "file")


def local_path(uri: str) -> Path:
    """The filesystem path of a local path or file:// URI."""
    return Path(urlsplit(uri).path if _scheme(uri) == "file" else uri)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and in-filesystem path for a validated URI."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


@contextmanager
def open_input(uri: str, what: str) -> Iterator[str | IO[bytes]]:
    """Yield a local path (for local inputs) or an open binary file (for remote ones).

    Raises InputError naming `what` when the input does not exist or cannot be opened.
    """
    validate_uri(uri, what)
    if is_local(uri):
        path = local_path(uri)
        if not path.is_file():
            raise InputError(f"{what} {uri} does not exist or is not a file: check the path")
        yield str(path)
        return
    fs, path = filesystem(uri)
    try:
        handle = fs.open(path, "rb")
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise InputError(f"{what} {uri} cannot be read ({type(exc).__name__}): check the URI and access") from None
    with handle:
        yield handle


def write_bytes_atomic(uri: str, data: bytes, what: str) -> None:
    """Write `data` so that readers see either nothing or the whole object.

    Local: a temporary file beside the target, then rename. Object stores: one PUT, which S3 and
    GCS publish atomically.
    """
    validate_uri(uri, what)
    if is_local(uri):
        _replace_atomically(local_path(uri), lambda tmp: Path(tmp).write_bytes(data))
        return
    fs, path = filesystem(uri)
    fs.pipe_file(path, data)


def _replace_atomically(target: Path, write: Callable[[str], object]) -> None:
    """`write(tmp)` a temporary file beside `target`, then rename it over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def commit_file(local: Path, uri: str, what: str) -> None:
    """Publish a finished local file at `uri` so readers see either nothing or all of it.

    Local: copied beside the target under a temporary name, then renamed. Object stores: one
    upload, which S3 and GCS make visible only when complete (multipart uploads included).
    """
    validate_uri(uri, what)
    if is_local(uri):
        _replace_atomically(local_path(uri), lambda tmp: shutil.copyfile(local, tmp))
        return
    fs, path = filesystem(uri)
    fs.put_file(str(local), path)


def check_writable(uri: str, what: str) -> None:
    """Fail before any work when the output's folder cannot take files (local outputs only;
    object-store permissions show at commit)."""
    validate_uri(uri, what)
    if not is_local(uri):
        return
    target = local_path(uri)
    if target.is_dir():
        raise InputError(f"{what} {uri} is a folder: give a file name such as {target / 'dubbed.mp4'}")
    parent = target.parent if str(target.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise InputError(f"{what} {uri} cannot be written: {existing} is not a writable folder")
