"""fsspec URIs: validation before use, reading, and writes that never leave a partial object.

Credentials are resolved by fsspec/s3fs from the environment or instance roles; nothing here
reads, logs or formats them.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

import fsspec

from musedub.infra.block_cache import BLOCK, BlockCachedReader
from musedub.infra.errors import InputError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "az", "abfs", "abfss"})
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: the process's umask, restored at once


def _scheme(uri: str) -> str:
    """The URI's scheme, '' for a plain local path (a Windows drive letter never reaches here)."""
    head = uri.split("://", 1)[0] if "://" in uri else ""
    return head.lower() if _SCHEME.fullmatch(head) else ""


def split_uri(uri: str) -> tuple[str, str, str]:
    """(scheme, bucket, path) without URL rules for `#` and `?`: object keys and file names may hold
    them, so they never end a path here (urlsplit would cut a "fragment" off)."""
    scheme = _scheme(uri)
    if not scheme:
        return "", "", uri
    rest = uri.split("://", 1)[1]
    if scheme == "file":
        return "file", "", rest
    bucket, _, path = rest.partition("/")
    return scheme, bucket, path


def _credentials_end(uri: str) -> int:
    """Where credentials written into an object URI end (the index of their '@'), else -1. Bucket
    names hold neither ':' nor '@', and secret keys may hold '/', so `KEY:SECRET@` is found by the
    ':' before the first '/'."""
    scheme = _scheme(uri)
    if scheme in ("", "file"):
        return -1
    start = len(scheme) + 3
    head = uri[start:].split("/", 1)[0]
    if "@" in head:
        return start + head.rindex("@")
    if ":" in head:
        at = uri.find("@", start + head.index(":"))
        return at if at >= 0 else start + len(head)
    return -1


def redact(uri: str) -> str:
    """The URI as it may be printed: credentials written into it become ***."""
    end = _credentials_end(uri)
    if end < 0:
        return uri
    return f"{_scheme(uri)}://***@{uri[end + 1 :]}"


def canonical(uri: str) -> str:
    """One spelling per location: local paths absolute with symlinks resolved (file:// too), object
    URIs with `.`/`..`/`//` steps folded. Two URIs for one file or object compare equal."""
    scheme, bucket, path = split_uri(uri)
    if scheme in ("", "file"):
        return str(Path(os.path.expanduser(path)).resolve())
    scheme = "gs" if scheme == "gcs" else scheme
    return f"{scheme}://{bucket.lower()}/{posixpath.normpath('/' + path).lstrip('/')}"


def same_location(a: str, b: str) -> bool:
    """Whether two URIs name one file or object (also a hard link or a symlink to the same file)."""
    if canonical(a) == canonical(b):
        return True
    if is_local(a) and is_local(b):
        try:
            return os.path.samefile(local_path(a), local_path(b))
        except OSError:
            return False
    return False


def is_under(uri: str, prefix: str) -> bool:
    """Whether `uri`, once canonical, lies inside folder `prefix` (never on a sibling `prefix2`)."""
    return canonical(uri).startswith(canonical(prefix).rstrip("/") + "/")


def validate_uri(uri: str, what: str) -> str:
    """Check that `uri` is a local path or an object-store URI we support; return it unchanged."""
    if not uri or not uri.strip():
        raise InputError(f"{what} is empty: give a local path or an s3:// / gs:// URI")
    if any(not c.isprintable() for c in uri):
        raise InputError(f"{what} {redact(uri)!r} contains control characters: give a plain path or URI")
    scheme, bucket, _ = split_uri(uri)
    if scheme not in ("", "file") and scheme not in REMOTE_SCHEMES:
        raise InputError(
            f"{what} {redact(uri)!r} has unsupported scheme {scheme!r}: use a local path, file://, "
            f"or one of {', '.join(sorted(REMOTE_SCHEMES))}"
        )
    if scheme in REMOTE_SCHEMES and _credentials_end(uri) >= 0:
        raise InputError(
            f"{what} {redact(uri)!r} carries credentials: remove them from the URI and give them "
            "through the environment (e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or an instance role"
        )
    if scheme in REMOTE_SCHEMES and not bucket:
        raise InputError(f"{what} {uri!r} names no bucket: write it as {scheme}://BUCKET/KEY")
    return uri


def is_local(uri: str) -> bool:
    return _scheme(uri) in ("", "file")


def local_path(uri: str) -> Path:
    """The filesystem path of a local path or file:// URI."""
    return Path(split_uri(uri)[2])


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and in-filesystem path for a validated URI."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def _input_file(uri: str, what: str) -> Path:
    """The path of a local input, or InputError naming it when there is no such file."""
    path = local_path(uri)
    if not path.is_file():
        raise InputError(f"{what} {uri} does not exist or is not a file: check the path")
    return path


def _unreadable(uri: str, what: str, exc: Exception) -> InputError:
    return InputError(f"{what} {uri} cannot be read ({type(exc).__name__}): check the URI and access")


def _remote_identity(info: dict) -> str:
    """What identifies a remote object's content: its ETag/MD5 (or size and mtime where the store has none)."""
    for key in ("ETag", "etag", "md5Hash", "crc32c"):
        if info.get(key):
            return f"{key.lower()}:{str(info[key]).strip(chr(34))}"
    return f"size-mtime:{info.get('size')}:{info.get('LastModified') or info.get('mtime')}"


def _local_identity(path: Path) -> str:
    stat = path.stat()
    return f"size-mtime:{stat.st_size}:{stat.st_mtime_ns}"


def identity(uri: str, what: str) -> str:
    """A cheap content identity (a HEAD on object stores, a stat locally) that planning records and
    every later open of the input checks (`open_input(expect=...)`), so a job never mixes two
    versions of an object that changed while it ran."""
    validate_uri(uri, what)
    if is_local(uri):
        path = _input_file(uri, what)
        return _local_identity(path)
    fs, path = filesystem(uri)
    try:
        return _remote_identity(fs.info(path))
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise _unreadable(uri, what, exc) from None


def unchanged_key(uri: str, what: str) -> str:
    """Stands for one version of an input, to reuse what was computed from it: the object store's
    identity, or locally the file's inode, size and modification and change times (a file
    replaced, even by one with the same size and a copied mtime, has another inode or ctime)."""
    validate_uri(uri, what)
    if not is_local(uri):
        return identity(uri, what)
    stat = _input_file(uri, what).stat()
    return f"local:{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"


def _check_unchanged(uri: str, what: str, expect: str | None, found: str) -> None:
    if expect and found != expect:
        raise InputError(
            f"{what} {uri} changed after its job was planned (was {expect}, now {found}): "
            "nothing was written; run the job again to dub the new version"
        )


@contextmanager
def open_input(uri: str, what: str, expect: str | None = None) -> Iterator[str | IO[bytes]]:
    """Yield a local path (for local inputs) or a seekable binary file (for remote ones) whose reads
    go through the node's block cache (infra/block_cache.py): each byte of a remote object is
    fetched once per node, by ranged GETs of one block, however many stages decode it.

    `expect` is the identity (`identity()`) planning recorded: an input found different fails.
    Raises InputError naming `what` when the input does not exist, cannot be opened, or changed.
    """
    validate_uri(uri, what)
    if is_local(uri):
        path = _input_file(uri, what)
        _check_unchanged(uri, what, expect, _local_identity(path) if expect else "")
        yield str(path)
        return
    fs, path = filesystem(uri)
    try:
        handle = fs.open(path, "rb", block_size=BLOCK, cache_type="none")
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise _unreadable(uri, what, exc) from None
    with handle:
        details = getattr(handle, "details", None) or fs.info(path)
        found = _remote_identity(details)
        _check_unchanged(uri, what, expect, found)
        with BlockCachedReader(handle, canonical(uri), found, int(details["size"]), what) as reader:
            yield reader


def read_bytes(uri: str, what: str) -> bytes:
    """The whole, current content of a small input (a manifest, a report, a lease), read past the
    block cache; InputError naming `what` otherwise."""
    validate_uri(uri, what)
    if is_local(uri):
        path = _input_file(uri, what)
        return path.read_bytes()
    fs, path = filesystem(uri)
    try:
        return fs.cat_file(path)
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise _unreadable(uri, what, exc) from None


@contextmanager
def open_stream(uri: str, what: str) -> Iterator[IO[bytes]]:
    """A small input (a manifest) as a buffered, seekable binary file read past the block cache, so
    a reader can go line by line without holding it whole; InputError naming `what` otherwise."""
    validate_uri(uri, what)
    try:
        if is_local(uri):
            handle: IO[bytes] = _input_file(uri, what).open("rb")
        else:
            fs, path = filesystem(uri)
            # one ranged GET per buffer: fsspec's own readline would copy a whole block per line
            handle = io.BufferedReader(fs.open(path, "rb", block_size=BLOCK, cache_type="none"), BLOCK)
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise _unreadable(uri, what, exc) from None
    with handle:
        yield handle


def exists(uri: str) -> bool:
    validate_uri(uri, "path")
    if is_local(uri):
        return local_path(uri).exists()
    fs, path = filesystem(uri)
    return bool(fs.exists(path))


def list_files(prefix: str) -> list[str]:
    """Names (not paths) of the files directly under folder `prefix`; [] when it does not exist."""
    validate_uri(prefix, "folder")
    if is_local(prefix):
        folder = local_path(prefix)
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    fs, path = filesystem(prefix)
    try:
        entries = fs.ls(path.rstrip("/"), detail=True, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(PurePosixPath(e["name"]).name for e in entries if e.get("type") == "file")


def list_tree(prefix: str) -> list[str]:
    """Paths, relative to folder `prefix`, of every file below it (sorted); [] when it does not exist."""
    validate_uri(prefix, "folder")
    if is_local(prefix):
        folder = local_path(prefix)
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    fs, path = filesystem(prefix)
    root = path.rstrip("/")
    fs.invalidate_cache(root)
    try:
        found = fs.find(root)
    except FileNotFoundError:
        return []
    return sorted(PurePosixPath(f).relative_to(root).as_posix() for f in found if f != root)


def checksum(uri: str, what: str) -> str:
    """What identifies an input's content: sha256 of a local file, the object store's ETag/MD5."""
    validate_uri(uri, what)
    if is_local(uri):
        path = _input_file(uri, what)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return f"sha256:{digest.hexdigest()}"
    return identity(uri, what)


def fetch_file(uri: str, local: Path, what: str) -> Path:
    """Copy an input to a local file (object stores download; local inputs are copied)."""
    validate_uri(uri, what)
    if is_local(uri):
        shutil.copyfile(local_path(uri), local)
        return local
    fs, path = filesystem(uri)
    try:
        fs.get_file(path, str(local))
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise _unreadable(uri, what, exc) from None
    return local


def remove_tree(prefix: str) -> None:
    """Delete a folder and everything under it (or one file); nothing happens when it is absent."""
    validate_uri(prefix, "folder")
    if is_local(prefix):
        path = local_path(prefix)
        if path.is_file():
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)
        return
    fs, path = filesystem(prefix)
    try:
        fs.rm(path.rstrip("/"), recursive=True)
    except FileNotFoundError:
        return


def join_uri(prefix: str, *names: str) -> str:
    return "/".join([prefix.rstrip("/"), *names])


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


def create_exclusive(uri: str, data: bytes, what: str) -> bool:
    """Create the object only if nothing is there yet; False when it already exists.

    The one primitive leases need: of several writers racing for the same name exactly one wins,
    and a reader sees either nothing or the whole content. Local: the content in a temporary file,
    then a hard link to the name (fails if it exists). Object stores: a conditional PUT (S3
    If-None-Match: *; GCS if-generation-match 0), atomic on the server.
    """
    validate_uri(uri, what)
    if is_local(uri):
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(data)
        try:
            os.link(tmp.name, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp.name)
        return True
    fs, path = filesystem(uri)
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    except OSError as exc:
        if "PreconditionFailed" in str(exc) or "412" in str(exc):
            return False
        raise
    return True


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
