"""`musedub features audio`: the [F, 50, D] audio prompts of a file, for inspection and caching."""

from __future__ import annotations

import io
import logging
from typing import Annotated

import numpy as np
import typer

from musedub.infra.errors import InputError
from musedub.infra.storage import write_bytes_atomic
from musedub.jobs.job_flags import check_uris
from musedub.models.weights.store import DEFAULT_WEIGHTS, ModelStore
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.audio.windows import video_frame_count
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.frame_rate import parse_fps

app = typer.Typer(no_args_is_help=True, help="Model input features.")
log = logging.getLogger(__name__)


def parse_range(text: str | None, total: int) -> tuple[int, int]:
    """'A:B' (either side optional) -> [A, B) within [0, total]."""
    if text is None:
        return 0, total
    start, sep, stop = text.partition(":")
    try:
        bounds = (int(start) if start else 0, int(stop) if stop else total)
    except ValueError:
        raise InputError(f"--frames {text!r} is not A:B with integers, e.g. 100:350") from None
    if not sep:
        raise InputError(f"--frames {text!r} needs a colon: A:B, A: or :B")
    return bounds


@app.command()
def audio(
    audio_uri: Annotated[str, typer.Argument(metavar="AUDIO", help="Audio or video file (path or URI).")],
    fps: Annotated[str, typer.Option(help="Video frame rate: 25, 29.97, 30000/1001 ...")],
    output: Annotated[str, typer.Option("-o", "--output", help="Where to write the .npy (path or URI).")],
    weights: Annotated[str, typer.Option(help="Weights folder or URI.")] = DEFAULT_WEIGHTS,
    frames: Annotated[str | None, typer.Option(help="Frame range A:B (default: all frames).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Write the audio prompts (before positional encoding) as float32 [F, 50, D] .npy."""
    rate = parse_fps(fps)
    check_uris(audio=audio_uri, output=output, weights=weights)
    samples = decode_audio_16k_mono(audio_uri)
    start, stop = parse_range(frames, video_frame_count(len(samples), rate))
    log.info("audio prompts: audio=%s fps=%s frames=[%d, %d) weights=%s", audio_uri, rate, start, stop, weights)
    prompter = AudioPrompter(ModelStore(weights).load_audio_encoder(device))
    prompts = prompter.for_waveform(samples, rate, start, stop)
    buffer = io.BytesIO()
    np.save(buffer, prompts.astype(np.float32))
    write_bytes_atomic(output, buffer.getvalue(), "output")
    typer.echo(f"wrote {output}: {prompts.shape[0]} frames x {prompts.shape[1]} tokens x {prompts.shape[2]}")
