"""Open a media input (path or URI) with PyAV, turning every failure into one clear InputError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import av

from musedub.infra.errors import InputError
from musedub.infra.storage import open_input


@contextmanager
def open_media(uri: str, what: str, examples: str, expect: str | None = None) -> Iterator[av.container.InputContainer]:
    """Yield the open container; `examples` names formats to suggest when it is not media; `expect`
    is the identity planning recorded (`infra.storage.identity`)."""
    with open_input(uri, what, expect) as source:
        try:
            container = av.open(source, mode="r")
        except (av.error.FFmpegError, ValueError) as exc:
            raise InputError(
                f"{what} {uri} is not a readable media file ({exc.__class__.__name__}): give {examples}"
            ) from None
        with container:
            yield container
