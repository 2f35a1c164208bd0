"""`musedub dub`: one video, one dub audio, one lip-synced mp4 (local paths or fsspec URIs)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from infra.errors import ConfigError
from infra.model_store import DEFAULT_WEIGHTS, DTYPES
from models.landmarks import LandmarkBackend
from pipeline.dub_options import DubOptions, MaskSource
from pipeline.job_report import report_uri
from pipeline.length_policy import LengthPolicy
from pipeline.local_runner import LocalRunner
from pipeline.video_encode import DEFAULT_CRF, DEFAULT_PRESET

log = logging.getLogger(__name__)


def build_options(**fields: Any) -> DubOptions:
    """DubOptions from command-line values; a bad value names its flag."""
    try:
        return DubOptions(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: {first['msg']}") from None


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")


def dub(
    video: Annotated[str, typer.Option(help="Video or still image of the speaker (path or URI).")],
    audio: Annotated[str, typer.Option(help="The new speech (any audio, or a video's audio track).")],
    output: Annotated[str, typer.Option(help="Where to write the mp4 (path or URI).")],
    weights: Annotated[str, typer.Option(help="Weights folder or URI.")] = DEFAULT_WEIGHTS,
    landmarks: Annotated[LandmarkBackend, typer.Option(help="face-alignment (S3FD+FAN) or dlib.")] = "face-alignment",
    mask: Annotated[
        MaskSource, typer.Option(help="Blend mask: auto (BiSeNet parsing if its weights exist), parsing, landmarks.")
    ] = "auto",
    length_policy: Annotated[LengthPolicy, typer.Option(help="cycle, loop or trim-audio.")] = "cycle",
    version: Annotated[str, typer.Option(help="UNet version: v1.5 or v1.0.")] = "v1.5",
    extra_margin: Annotated[int, typer.Option(help="v1.5: px added below the chin.")] = 10,
    bbox_shift: Annotated[int, typer.Option(help="v1.0: px the nose point moves down.")] = 0,
    crf: Annotated[int, typer.Option(help="x264 quality, lower is better; 16 is visually lossless.")] = DEFAULT_CRF,
    preset: Annotated[str, typer.Option(help="x264 preset.")] = DEFAULT_PRESET,
    detect_every: Annotated[int, typer.Option(help="Full-frame face detection every N frames.")] = 5,
    min_face: Annotated[int, typer.Option(help="Faces smaller than this (px) pass through.")] = 64,
    still_fps: Annotated[str, typer.Option(help="Frame rate of the output for a still-image video.")] = "25",
    segment_seconds: Annotated[float, typer.Option(help="Seconds of video per segment (bounds memory).")] = 10.0,
    batch_size: Annotated[int, typer.Option(help="Frames per generator batch.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="Generator precision: fp32, bf16 or fp16.")] = "fp32",
) -> None:
    """Regenerate the mouth in VIDEO so the lips follow AUDIO; write OUTPUT and OUTPUT.report.json."""
    options = build_options(
        version=version,
        extra_margin=extra_margin,
        bbox_shift=bbox_shift,
        length_policy=length_policy,
        crf=crf,
        preset=preset,
        landmarks=landmarks,
        mask=mask,
        detect_every=detect_every,
        min_face=min_face,
        still_fps=still_fps,
        segment_seconds=segment_seconds,
        batch_size=batch_size,
    )
    check_dtype(dtype)
    log.info(
        "dub: video=%s audio=%s output=%s weights=%s device=%s options=%s",
        video,
        audio,
        output,
        weights,
        device,
        options.model_dump_json(),
    )
    report = LocalRunner(options, weights, device, dtype).dub(video, audio, output)
    faces = ", ".join(f"{k} {v}" for k, v in report.faces.items())
    typer.echo(
        f"wrote {output}: {report.output_frames} frames at {report.fps} fps ({faces}); report {report_uri(output)}"
    )
