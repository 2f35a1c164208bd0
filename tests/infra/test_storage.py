"""URI validation and atomic writes, locally and on a real S3 endpoint."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from musedub.infra.errors import InputError
from musedub.infra.storage import create_exclusive, join_uri, read_bytes, validate_uri, write_bytes_atomic


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("", "is empty"),
        ("http://example.com/a.wav", "unsupported scheme 'http'"),
        ("ftp://host/x", "unsupported scheme"),
        ("s3:///key-without-bucket", "names no bucket"),
        ("a\nb", "control characters"),
    ],
)
def test_rejects_bad_uris(uri: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        validate_uri(uri, "audio")


@pytest.mark.parametrize(
    "uri", ["local/file.wav", "/abs/file.wav", "file:///abs/file.wav", "s3://bucket/key", "gs://b/k"]
)
def test_accepts_supported_uris(uri: str) -> None:
    assert validate_uri(uri, "audio") == uri


def test_local_atomic_write_leaves_only_the_target(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out.npy"
    write_bytes_atomic(str(target), b"abc", "output")
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.npy"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_s3_write(s3_bucket: str) -> None:
    import boto3

    write_bytes_atomic(f"s3://{s3_bucket}/x/out.bin", b"payload", "output")
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key="x/out.bin")["Body"].read()
    assert body == b"payload"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_create_exclusive_lets_exactly_one_of_racing_writers_win(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = f"s3://{request.getfixturevalue('s3_bucket')}" if where == "s3" else str(tmp_path)
    uri = join_uri(root, "leases", "lease-000001.json")
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda i: create_exclusive(uri, f"writer {i}".encode(), "lease"), range(8)))
    assert won.count(True) == 1
    assert read_bytes(uri, "lease") == f"writer {won.index(True)}".encode()
    assert not create_exclusive(uri, b"late", "lease")
