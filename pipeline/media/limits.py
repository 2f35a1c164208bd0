"""How large an input may be, checked from container headers before anything is decoded.

A 16000x16000 PNG decodes to 768 MB and a 10-hour audio to 2.3 GB of float32 before any check
could look at the samples; the headers say so in microseconds. Limits come from the environment
so that every worker of a cluster applies the same ones (set them on the nodes, or before the
command starts its embedded cluster):

    MUSEDUB_MAX_PIXELS   largest frame, width x height   (default 40,000,000: 8K UHD is 33.2 M)
    MUSEDUB_MAX_SECONDS  longest video or audio           (default 21,600: 6 hours)
    MUSEDUB_MAX_FRAMES   most frames in a video           (default 1,296,000: 6 hours at 60 fps)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from musedub.infra.errors import ConfigError, InputError

DEFAULTS = {"MUSEDUB_MAX_PIXELS": 40_000_000, "MUSEDUB_MAX_SECONDS": 6 * 3600, "MUSEDUB_MAX_FRAMES": 6 * 3600 * 60}


@dataclass(frozen=True)
class MediaLimits:
    max_pixels: int
    max_seconds: float
    max_frames: int

    @classmethod
    def from_env(cls) -> MediaLimits:
        values = {}
        for name, default in DEFAULTS.items():
            text = os.environ.get(name, "")
            try:
                values[name] = float(text) if text else default
            except ValueError:
                raise ConfigError(f"{name}={text!r} is not a number: set it to a positive number or unset it") from None
            if values[name] <= 0:
                raise ConfigError(f"{name}={text!r} must be positive")
        return cls(int(values["MUSEDUB_MAX_PIXELS"]), values["MUSEDUB_MAX_SECONDS"], int(values["MUSEDUB_MAX_FRAMES"]))

    def check_size(self, what: str, uri: str, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise InputError(
                f"{what} {uri} is {width}x{height} ({width * height / 1e6:.1f} MP), over the limit of "
                f"{self.max_pixels / 1e6:.1f} MP: scale it down, or raise MUSEDUB_MAX_PIXELS"
            )

    def check_seconds(self, what: str, uri: str, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise InputError(
                f"{what} {uri} lasts {seconds:.0f} s, over the limit of {self.max_seconds:.0f} s: "
                "cut it, or raise MUSEDUB_MAX_SECONDS"
            )

    def check_frames(self, what: str, uri: str, frames: int) -> None:
        if frames > self.max_frames:
            raise InputError(f"{what} {uri} has over {self.max_frames} frames: cut it, or raise MUSEDUB_MAX_FRAMES")
