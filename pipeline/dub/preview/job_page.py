"""The HTML of one job's preview page, from its report and what `job.py` sampled and measured."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from musedub.pipeline.dub.preview.page import bar, document, esc, table
from musedub.pipeline.dub.preview.sampling import CLIP_SECONDS, PLOT_SECONDS, STILLS
from musedub.pipeline.dub.preview.sync_plot import SyncFit
from musedub.pipeline.media.frame_rate import parse_fps

if TYPE_CHECKING:
    from musedub.pipeline.dub.preview.job import Sampled

POLICY_TEXT = {
    "cycle": "the dub audio sets the length; a longer audio runs the video forward, then backward, and so on",
    "loop": "the dub audio sets the length; a longer audio starts the video again from its first frame",
    "trim-audio": "the output stops with the video and the dub audio is cut there",
}

FOOTER = [
    (
        "Before | after",
        f"{STILLS} output frames spread evenly over the frames where a face was dubbed; left the "
        "source frame that fed it, right the output frame (JPEG).",
    ),
    (
        "Mouth clip",
        f"the first {CLIP_SECONDS:g} s of the sync window, cropped around the dubbed mouth; left the "
        "source, right the output (VP9 WebM, no sound).",
    ),
    (
        "Sync plot",
        f"over at most {PLOT_SECONDS:g} s (the start of the longest dubbed span): the dubbed mouth's "
        "inner-lip gap, from landmarks found again on the output's frames, against the dub audio's RMS level per "
        "frame, each scaled to its own range; grey where the dub audio rests. r is their Pearson correlation; "
        "the best lag (frames, > 0: the mouth follows the audio) is searched within +-5 frames.",
    ),
    (
        "Face dubbed",
        "the report's account of faces: the --speaker policy, how speaking was scored, and per run of "
        "output frames which source track was dubbed and why.",
    ),
    ("Length", "the length policy and the frame counts it gave."),
    ("Timings", "seconds each stage took for this job, as its report records them."),
]


def _fit_text(fit: SyncFit) -> str:
    if fit.r is None:
        return f"too few frames with a face and audio to correlate ({fit.frames})"
    lag = "" if fit.best_lag is None else f"; best lag {fit.best_lag:+d} frames (r = {fit.best_r:.2f})"
    return f"r = {fit.r:.2f} over {fit.frames} frames{lag}"


def _seconds(frame: int, fps: Fraction) -> str:
    return f"{float(frame / fps):.2f} s"


def job_page(
    body: dict[str, Any], video: str, audio: str, output: str, sampled: Sampled, svg: str, fit: SyncFit
) -> str:
    fps = parse_fps(body["fps"])
    options, speakers, face = body["options"], body.get("speakers", {}), sampled.face
    parts = [f"<h1>Dubbing preview: job {esc(body['job_id'])}</h1>"]
    parts.append(table(None, [("output", output), ("source video", video), ("dub audio", audio)]))
    if body.get("models", {}).get("random_weights"):
        parts.append('<p class="warn">Made with RANDOM weights (init-random): the mouth is noise, not speech.</p>')
    parts.append("<h2>Before | after</h2>")
    for frame, uri in sampled.stills:
        parts.append(
            f'<figure><img src="{uri}" alt="frame {frame}: source left, output right">'
            f"<figcaption>output frame {frame} ({_seconds(frame, fps)}): source | output</figcaption></figure>"
        )
    parts.append("<h2>Mouth, before | after</h2>")
    if sampled.clip is None:
        parts.append('<p class="note">No face was found in the output in the sync window, so no clip.</p>')
    else:
        stop = face.start + sampled.clip_frames
        parts.append(
            f'<figure><video src="{sampled.clip}" controls muted loop autoplay playsinline></video>'
            f"<figcaption>frames {face.start}-{stop} ({_seconds(face.start, fps)} to {_seconds(stop, fps)}): "
            "source | output</figcaption></figure>"
        )
    parts.append("<h2>Sync: mouth opening and dub audio</h2>")
    parts.append(
        f'<p class="note">Output frames {face.start}-{face.stop} ({_seconds(face.start, fps)} to '
        f"{_seconds(face.stop, fps)}) of {esc(body['output_frames'])}, every frame; faces found in the output there: "
        f"{face.faces_found}. {esc(_fit_text(fit))}.</p>{svg}"
    )
    parts.append("<h2>Face dubbed</h2>")
    parts.append(
        table(
            None,
            [
                ("--speaker", speakers.get("speaker", options.get("speaker", "auto"))),
                ("who speaks, scored by", speakers.get("detector", "n/a")),
                ("face tracks in the source", speakers.get("tracks", "n/a")),
            ],
        )
    )
    spans = speakers.get("spans", [])
    parts.append(
        table(
            ["output frames", "seconds", "track", "why", "speaking score"],
            [
                (
                    f"{s['frames'][0]}-{s['frames'][1]}",
                    f"{s['seconds'][0]}-{s['seconds'][1]}",
                    "none (passed through)" if s.get("track") is None else s["track"],
                    s.get("why", ""),
                    s.get("speaking_score", ""),
                )
                for s in spans
            ],
        )
        if spans
        else '<p class="note">The report has no account of faces.</p>'
    )
    rests = speakers.get("dub_audio_rests", [])
    if rests:
        listed = ", ".join(f"{r['seconds'][0]}-{r['seconds'][1]} s" for r in rests)
        parts.append(f'<p class="note">Dub audio rests (mouth generated from silence): {esc(listed)}.</p>')
    faces = body.get("faces", {})
    if faces:
        parts.append(table(["frame status", "frames"], sorted(faces.items())))
    policy = options.get("length_policy", "cycle")
    parts.append("<h2>Length</h2>")
    parts.append(
        table(
            None,
            [
                ("length policy", f"{policy}: {POLICY_TEXT.get(policy, '')}"),
                ("source", body.get("video_description", "")),
                ("source frames", body["source_frames"]),
                ("dub audio", f"{body.get('audio_seconds', '?')} s"),
                ("output frames", f"{body['output_frames']} at {body['fps']} fps"),
            ],
        )
    )
    seconds = body.get("seconds", {})
    longest = max((v for k, v in seconds.items() if k != "total"), default=0.0) or 1.0
    parts.append("<h2>Timings</h2>")
    parts.append(
        table(
            ["stage", "seconds", ""],
            [(k, f"{v:.2f}", bar(v / longest) if k != "total" else "") for k, v in seconds.items()],
        )
    )
    return document(f"preview {body['job_id']}", parts, FOOTER)
