"""`musedub faces VIDEO`: list a video's face tracks (table or JSON) and write a contact sheet."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Annotated

import cv2
import typer

from musedub.infra.errors import InputError
from musedub.infra.storage import split_uri, write_bytes_atomic
from musedub.jobs.job_flags import (
    DEFAULTS,
    DetectEvery,
    FaceMinSize,
    Landmarks,
    MaxFaces,
    SegmentSeconds,
    StillFps,
    build_options,
    check_uris,
)
from musedub.models.weights.store import DEFAULT_WEIGHTS
from musedub.pipeline.dub.faces_listing import list_faces


def faces(
    video: Annotated[str, typer.Argument(help="Video to list the faces of (path or URI).")],
    weights: Annotated[str, typer.Option(help="Weights folder or URI (for face-alignment).")] = DEFAULT_WEIGHTS,
    landmarks: Landmarks = DEFAULTS.landmarks,
    detect_every: DetectEvery = DEFAULTS.detect_every,
    face_min_size: FaceMinSize = DEFAULTS.face_min_size,
    max_faces: MaxFaces = DEFAULTS.max_faces,
    segment_seconds: SegmentSeconds = DEFAULTS.segment_seconds,
    still_fps: StillFps = DEFAULTS.still_fps,
    sheet: Annotated[
        str | None, typer.Option(help="Contact sheet PNG (a thumbnail per track); default <video name>.faces.png here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tracks as JSON instead of a table.")] = False,
) -> None:
    """List every face track of VIDEO with the ids `dub --speaker track:N` takes, and who speaks when."""
    check_uris(video=video, weights=weights, sheet=sheet)
    options = build_options({**locals(), "speaker": "auto"})
    target = sheet or f"{PurePosixPath(split_uri(video)[2]).stem}.faces.png"
    if not target.lower().endswith(".png"):
        raise InputError(f"--sheet {target}: the contact sheet is a PNG: give a path ending in .png")
    listing = list_faces(video, options, weights)
    ok, png = cv2.imencode(".png", cv2.cvtColor(listing.contact_sheet(), cv2.COLOR_RGB2BGR))
    assert ok, "OpenCV could not encode a PNG"
    write_bytes_atomic(target, png.tobytes(), "contact sheet")
    if as_json:
        detector = listing.choice.detector or "none"
        body = {"video": video, "fps": str(listing.info.fps), "detector": detector, "sheet": target}
        typer.echo(json.dumps({**body, "tracks": listing.rows()}))
    else:
        typer.echo(listing.table())
        typer.echo(f"who speaks: scored by {listing.choice.detector or 'nothing (the source has no audio)'}")
        typer.echo(f"contact sheet: {target}")
