"""The model store: local folders, s3:// weights cached once per machine, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from musedub.infra.errors import ConfigError
from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.store import ModelStore, resolve_device, resolve_dtype


def upload_folder(bucket: str, prefix: str, root: Path) -> None:
    import boto3

    client = boto3.client("s3")
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


def test_s3_weights_are_fetched_once_and_load(
    s3_bucket: str, tiny_weights: WeightsLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("MUSEDUB_CACHE", str(tmp_path / "cache"))
    upload_folder(s3_bucket, "releases/tiny", tiny_weights.root)
    uri = f"s3://{s3_bucket}/releases/tiny"
    local = ModelStore(uri).load_unet()
    expected = ModelStore(str(tiny_weights.root)).load_unet()
    pairs = zip(local.state_dict().values(), expected.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    cached = list((tmp_path / "cache" / "weights").iterdir())
    assert not [p for p in cached if p.name.endswith(".partial")]
    # A second store on the same machine must not touch the bucket again.
    bucket = boto3.resource("s3").Bucket(s3_bucket)
    bucket.objects.all().delete()
    again = ModelStore(uri)
    assert again.layout.root == ModelStore(uri).layout.root
    assert again.load_audio_encoder(device="cpu").num_states == 5


def test_missing_remote_weights(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSEDUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="does not exist or is not readable"):
        ModelStore(f"s3://{s3_bucket}/nothing-here").load_unet()
    assert not any((tmp_path / "cache" / "weights").glob("*.partial"))


def test_missing_local_folder_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="init-random --tiny"):
        ModelStore(str(tmp_path / "absent")).load_generator(device="cpu")


def test_incomplete_folder_names_what_is_missing(tmp_path: Path, tiny_weights: WeightsLayout) -> None:
    copy = tmp_path / "w"
    shutil.copytree(tiny_weights.root, copy)
    (copy / "musetalkV15" / "unet.pth").unlink()
    with pytest.raises(ConfigError, match=r"lacks musetalkV15/unet.pth"):
        ModelStore(str(copy)).load_unet()


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("tpu-ish")


def test_auto_precision_is_bf16_on_a_gpu_and_fp32_on_a_cpu() -> None:
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
