"""`musedub dub`: one video, one dub audio, one lip-synced mp4 (local paths or fsspec URIs)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from musedub.jobs import api
from musedub.jobs.job_flags import (
    DEFAULTS,
    BatchSize,
    BboxShift,
    Compile,
    CpuThreads,
    Crf,
    Depth,
    DetectEvery,
    Dtype,
    ExtraMargin,
    FaceMinSize,
    Generator,
    Landmarks,
    Length,
    Mask,
    MaxFaces,
    Mbtree,
    MinFace,
    Preset,
    Preview,
    SegmentSeconds,
    Speaker,
    StillFps,
    StyleReference,
    StyleSteps,
    Version,
    build_options,
    check_dtype,
    check_uris,
)
from musedub.jobs.progress_bars import DubBars, on_terminal
from musedub.models.weights.store import DEFAULT_WEIGHTS
from musedub.pipeline.dub.plan import report_uri
from musedub.pipeline.dub.preview import write_job_preview

log = logging.getLogger(__name__)


def dub(
    video: Annotated[str, typer.Option(help="Video or still image of the speaker (path or URI).")],
    audio: Annotated[str, typer.Option(help="The new speech (any audio, or a video's audio track).")],
    output: Annotated[str, typer.Option(help="Where to write the mp4 (path or URI).")],
    weights: Annotated[str, typer.Option(help="Weights folder or URI.")] = DEFAULT_WEIGHTS,
    landmarks: Landmarks = DEFAULTS.landmarks,
    mask: Mask = DEFAULTS.mask,
    length_policy: Length = DEFAULTS.length_policy,
    version: Version = DEFAULTS.version,
    extra_margin: ExtraMargin = DEFAULTS.extra_margin,
    bbox_shift: BboxShift = DEFAULTS.bbox_shift,
    depth: Depth = DEFAULTS.depth,
    crf: Crf = DEFAULTS.crf,
    preset: Preset = DEFAULTS.preset,
    mbtree: Mbtree = DEFAULTS.mbtree,
    detect_every: DetectEvery = DEFAULTS.detect_every,
    min_face: MinFace = DEFAULTS.min_face,
    speaker: Speaker = DEFAULTS.speaker,
    generator: Generator = DEFAULTS.generator,
    style_reference: StyleReference = DEFAULTS.style_reference,
    style_steps: StyleSteps = DEFAULTS.style_steps,
    face_min_size: FaceMinSize = DEFAULTS.face_min_size,
    max_faces: MaxFaces = DEFAULTS.max_faces,
    still_fps: StillFps = DEFAULTS.still_fps,
    segment_seconds: SegmentSeconds = DEFAULTS.segment_seconds,
    batch_size: BatchSize = DEFAULTS.batch_size,
    cpu_threads: CpuThreads = DEFAULTS.cpu_threads,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Dtype = "auto",
    compile: Compile = False,
    preview: Preview = False,
) -> None:
    """Regenerate the mouth in VIDEO so the lips follow AUDIO; write OUTPUT and OUTPUT.report.json."""
    check_uris(video=video, audio=audio, output=output, weights=weights, style_reference=style_reference)
    options = build_options(locals())
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
    bars = DubBars() if on_terminal() else None
    try:
        report = api.dub(video, audio, output, options, weights, device, dtype, compile, bars.phase if bars else None)
    finally:
        if bars is not None:
            bars.close()
    faces = ", ".join(f"{k} {v}" for k, v in report.faces.items())
    typer.echo(
        f"wrote {output}: {report.output_frames} frames at {report.fps} fps ({faces}); report {report_uri(output)}"
    )
    if preview:
        typer.echo(f"preview {write_job_preview(report_uri(output), weights)}")
