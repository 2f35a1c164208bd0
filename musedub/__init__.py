"""musedub: batch lip-sync dubbing with MuseTalk on Ray.

The public Python API; the CLI (`musedub ...`) calls the same functions:

    from musedub import dub, DubOptions
    report = dub("talk.mp4", "speech_fr.wav", "talk_fr.mp4", DubOptions(landmarks="dlib"))

    from musedub import batch
    result = batch("jobs.jsonl", weights="s3://bucket/weights")

The code lives in the repository's `pipeline/`, `jobs/`, `models/` and `infra/` folders, installed
as `musedub.pipeline`, `musedub.jobs`, `musedub.models` and `musedub.infra`. Names are resolved on
first use, so `import musedub.infra` stays light (no torch, no Ray).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "dub": "musedub.jobs.api",
    "batch": "musedub.jobs.api",
    "BatchResult": "musedub.jobs.api",
    "DubOptions": "musedub.pipeline.dub.options",
    "DubReport": "musedub.pipeline.dub.report",
    "JobOutcome": "musedub.pipeline.dub.batch",
    "ErrorRecord": "musedub.pipeline.core.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'musedub' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
