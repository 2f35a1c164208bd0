"""Command-line flags that set DubOptions, shared by `dub` and `batch` so both spell them alike."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from musedub.infra.errors import ConfigError
from musedub.infra.storage import validate_uri
from musedub.models.constants import LandmarkBackend
from musedub.models.weights.store import PRECISIONS
from musedub.pipeline.dub.length_policy import LengthPolicy
from musedub.pipeline.dub.options import DubOptions, MaskSource

Landmarks = Annotated[LandmarkBackend, typer.Option(help="face-alignment (S3FD+FAN) or dlib.")]
Mask = Annotated[
    MaskSource, typer.Option(help="Blend mask: auto (BiSeNet parsing if its weights exist), parsing, landmarks.")
]
Length = Annotated[LengthPolicy, typer.Option(help="When audio and video differ: cycle, loop or trim-audio.")]
Version = Annotated[str, typer.Option(help="UNet version: v1.5 or v1.0.")]
ExtraMargin = Annotated[int, typer.Option(help="v1.5: px added below the chin.")]
BboxShift = Annotated[int, typer.Option(help="v1.0: px the nose point moves down.")]
Depth = Annotated[  # a string checked by DubOptions (a wrong value is one line)
    str, typer.Option(help="Output bits: source (10-bit H.264 High 10 from a 10-bit or deeper source) or 8.")
]
Crf = Annotated[int, typer.Option(help="x264 quality, lower is better; 16 is visually lossless.")]
Preset = Annotated[str, typer.Option(help="x264 preset.")]
Mbtree = Annotated[bool, typer.Option(help="x264 MB-tree: smaller files, output bits no longer reproducible.")]
DetectEvery = Annotated[int, typer.Option(help="Full-frame face detection every N frames.")]
MinFace = Annotated[int, typer.Option(help="Faces smaller than this (px) pass through.")]
Speaker = Annotated[
    str,
    typer.Option(
        help="Which face is dubbed: auto (who speaks in the source), largest, X,Y (nearest that point, 0..1) "
        "or track:N (see `musedub faces`)."
    ),
]
Generator = Annotated[  # a string checked by DubOptions, so a wrong name is one line like any bad option
    str, typer.Option(help="musetalk, or style (speaker-style-preserving; ours, no published weights).")
]
StyleReference = Annotated[
    str | None,
    typer.Option(
        help="style: a clip, or a folder of clips, of the speaker (default: the source where the dubbed face speaks)."
    ),
]
StyleSteps = Annotated[int, typer.Option(help="style: DDIM steps per frame (cost grows with each step).")]
FaceMinSize = Annotated[int, typer.Option(help="Faces shorter than this (px) are not tracked.")]
MaxFaces = Annotated[int, typer.Option(help="Faces followed at once (the largest).")]
StillFps = Annotated[str, typer.Option(help="Frame rate of the output for a still-image video.")]
SegmentSeconds = Annotated[float, typer.Option(help="Seconds of video per segment (bounds memory, spreads work).")]
BatchSize = Annotated[int | None, typer.Option(help="Frames per generator batch (default 64 on a GPU, 8 on a CPU).")]
CpuThreads = Annotated[int, typer.Option(help="torch CPU threads per worker (output bits depend on it).")]
WebhookUrl = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        help="POST each job's end and the batch's end here (JSON, signed with MUSEDUB_WEBHOOK_SECRET).",
    ),
]
WebhookAllowPrivate = Annotated[
    bool, typer.Option("--webhook-allow-private", help="Allow a webhook on a link-local or reserved address.")
]
Preview = Annotated[
    bool,
    typer.Option(
        "--preview/--no-preview",
        help="Write OUTPUT.preview.html: before/after frames, a mouth clip, a sync plot, the face chosen, timings.",
    ),
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile", help="torch.compile the generator: a GPU worker's first batch takes ~80 s, then ~1.9x faster."
    ),
]
Dtype = Annotated[str, typer.Option(help="Generator precision: auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16.")]
Weights = Annotated[str, typer.Option(help="Weights folder or URI (on a cluster: seen by every node).")]
Address = Annotated[str | None, typer.Option(help="Existing Ray cluster (default: RAY_ADDRESS or local).")]
NumCpus = Annotated[int | None, typer.Option(help="CPUs of the embedded local cluster.")]
Work = Annotated[str | None, typer.Option(help="Root of work prefixes (default: beside each output).")]
KeepWork = Annotated[bool, typer.Option(help="Keep segment files after a job is committed.")]
CpuPool = Annotated[int, typer.Option(help="Actors of the CPU pool (0: from the cluster).")]
GpuPool = Annotated[int, typer.Option(help="Generator actors (0: one per GPU).")]
Pools = Annotated[
    Literal["auto", "split", "fused"],
    typer.Option(
        help="Pools: split (a CPU pool around a generator pool), fused (one pool does all); auto: split with a GPU."
    ),
]
BatchSegments = Annotated[
    int, typer.Option(help="Split pools: segments a generator actor fills its batches from at once.")
]
BatchWait = Annotated[float, typer.Option(help="Seconds a part-filled generator batch waits for other segments.")]
Device = Annotated[
    Literal["auto", "cuda", "cpu"],
    typer.Option(help="Generator: auto (GPU if the cluster has one), cuda (wait for an autoscaled GPU) or cpu."),
]
Runs = Annotated[str | None, typer.Option(help="Where run folders (errors table, summary) go.")]
M = TypeVar("M", bound=BaseModel)
DEFAULTS = DubOptions()  # the flags' defaults: one source of truth with the manifest's


def validated(model: type[M], values: dict[str, Any]) -> M:
    """A command's options model from its parameters (other names ignored); a bad value names its flag."""
    fields = {k: v for k, v in values.items() if k in model.model_fields}
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + "-".join(str(p) for p in first["loc"] if p != "options").replace("_", "-")
        raise ConfigError(f"{flag if first['loc'] else 'options'}: {first['msg']}") from None


def check_uris(**uris: str | None) -> None:
    """Every URI a command was given, checked before anything logs it: one carrying credentials is
    refused (its message redacted), so what is logged afterwards holds no secret."""
    for name, uri in uris.items():
        if uri is not None:
            validate_uri(uri, name.replace("_", " "))


def build_options(values: dict[str, Any]) -> DubOptions:
    return validated(DubOptions, values)


def check_dtype(dtype: str) -> None:
    if dtype not in PRECISIONS:
        raise ConfigError(f"--dtype {dtype!r} is not one of {', '.join(PRECISIONS)}")
