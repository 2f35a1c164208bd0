"""Frame rates as exact Fractions: 30000/1001, never int(29.97) as the reference does."""

from __future__ import annotations

from fractions import Fraction

from musedub.infra.errors import InputError


def parse_fps(text: str | float | Fraction) -> Fraction:
    """'25', '29.97', '30000/1001' -> an exact positive Fraction."""
    try:
        fps = Fraction(str(text)) if not isinstance(text, Fraction) else text
    except (ValueError, ZeroDivisionError):
        raise InputError(f"frame rate {text!r} is not a number: write it as 25, 29.97 or 30000/1001") from None
    if fps <= 0 or fps > 1000:
        raise InputError(f"frame rate {text!r} is out of range: give a rate between 0 and 1000 fps")
    return fps
