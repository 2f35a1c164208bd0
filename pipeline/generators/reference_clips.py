"""Which clips an explicit `--style-reference` names, and what a job key hashes of them: light, so
planning a job (a small Ray task) imports no model code."""

from __future__ import annotations

from pathlib import PurePosixPath

from musedub.infra.errors import InputError
from musedub.infra.storage import checksum, join_uri, list_tree
from musedub.pipeline.media.probe import VIDEO_SUFFIXES


def reference_clips(uri: str) -> list[str]:
    """`--style-reference`: a video file, or a folder whose videos (at any depth) are all used."""
    if PurePosixPath(uri.split("?")[0]).suffix.lower() in VIDEO_SUFFIXES:
        return [uri]
    names = [n for n in list_tree(uri) if PurePosixPath(n).suffix.lower() in VIDEO_SUFFIXES]
    if not names:
        raise InputError(
            f"style reference {uri} is neither a video file nor a folder of videos "
            f"({', '.join(sorted(VIDEO_SUFFIXES))}): give a clip of the speaker"
        )
    return [join_uri(uri, n) for n in names]


def reference_checksum(uri: str) -> str:
    """What the job key hashes for an explicit reference: every clip's checksum."""
    return ",".join(checksum(clip, "style reference") for clip in reference_clips(uri))
