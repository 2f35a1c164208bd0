"""URI validation and atomic writes, locally and on a real S3 endpoint."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from s3_proxy import ObjectCounts

from musedub.infra.block_cache import BLOCK
from musedub.infra.errors import InputError
from musedub.infra.storage import (
    canonical,
    create_exclusive,
    identity,
    is_under,
    join_uri,
    open_input,
    read_bytes,
    redact,
    same_location,
    split_uri,
    validate_uri,
    write_bytes_atomic,
)


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("", "is empty"),
        ("http://example.com/a.wav", "unsupported scheme 'http'"),
        ("ftp://host/x", "unsupported scheme"),
        ("s3:///key-without-bucket", "names no bucket"),
        ("a\nb", "control characters"),
        ("a\rforged.mp4", "control characters"),
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


def test_credentials_in_a_uri_are_refused_and_never_printed() -> None:
    with pytest.raises(InputError) as caught:
        validate_uri("s3://AKIAEXAMPLE:s3cr3t/x@bucket/in.mp4", "video")
    message = str(caught.value)
    assert "s3cr3t" not in message and "AKIAEXAMPLE" not in message
    assert "s3://***@bucket/in.mp4" in message and "environment" in message
    assert redact("gs://user:pw@b/k") == "gs://***@b/k" and redact("s3://b/k#x") == "s3://b/k#x"


def test_hash_and_query_characters_are_part_of_the_path() -> None:
    assert split_uri("s3://bucket/a#/../../b?.mp4") == ("s3", "bucket", "a#/../../b?.mp4")
    assert split_uri("out/#/../x.mp4") == ("", "", "out/#/../x.mp4")
    assert split_uri("dir/a://b") == ("", "", "dir/a://b")  # not a scheme: a local path
    assert canonical("s3://Bucket/a/./b//c/../d.mp4") == "s3://bucket/a/b/d.mp4"


def test_outputs_escaping_their_prefix_are_seen_through_any_spelling(tmp_path: Path) -> None:
    prefix = str(tmp_path / "out")
    assert is_under(str(tmp_path / "out" / "t" / "fr.mp4"), prefix)
    for escape in ("out/#/../../escape.mp4", "out/../escape.mp4", "out2/x.mp4"):
        assert not is_under(str(tmp_path / escape), prefix), escape
    assert not is_under("s3://b/out/#/../../x.mp4", "s3://b/out")
    assert is_under("s3://b/out/a#b.mp4", "s3://b/out/")


def test_the_same_file_is_recognised_through_links_and_spellings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = tmp_path / "in.mp4"
    video.write_bytes(b"x")
    (tmp_path / "link.mp4").symlink_to(video)
    os.link(video, tmp_path / "hard.mp4")
    monkeypatch.chdir(tmp_path)
    for other in ("in.mp4", "./sub/../in.mp4", f"file://{video}", "link.mp4", "hard.mp4"):
        assert same_location(other, str(video)), other
    assert not same_location("other.mp4", str(video))
    assert same_location("s3://b/k/../in.mp4", "s3://B/in.mp4") and not same_location("s3://b/in.mp4", "gs://b/in.mp4")


def test_local_atomic_write_leaves_only_the_target(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out.npy"
    write_bytes_atomic(str(target), b"abc", "output")
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.npy"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_s3_write(s3_bucket: str) -> None:
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


def test_a_remote_input_is_read_by_blocks_once_and_checked_against_its_plan(
    s3_bucket: str, s3_counts: ObjectCounts
) -> None:
    """A decoder seeking into a film fetches the block it reads, once per node (issue 15), and an
    object replaced after planning fails its reader instead of mixing two versions."""
    size = 6 * BLOCK
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="film.bin", Body=bytes(size))
    uri = f"s3://{s3_bucket}/film.bin"
    planned = identity(uri, "video")
    for _ in range(2):  # the second reader (another stage) is served by the cache
        with open_input(uri, "video", planned) as handle:
            assert not isinstance(handle, str)
            handle.seek(3 * BLOCK + 10)
            assert handle.read(65536) == bytes(65536)
    assert s3_counts.of(s3_bucket, "film.bin")[:2] == (BLOCK, 1)  # one ranged GET of one block
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="film.bin", Body=b"re-exported")
    with (
        pytest.raises(InputError, match=f"video {uri} changed after its job was planned"),
        open_input(uri, "video", planned),
    ):
        pass
