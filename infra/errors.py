"""Errors a user can act on.

Every error here is printed by the CLI as one line and a non-zero exit; anything else
escaping is a bug and keeps its traceback.
"""


class MusedubError(Exception):
    """An error whose message names the input at fault and how to fix it."""


class InputError(MusedubError):
    """A bad input (media file, URI, frame range): fails its own job only."""


class ConfigError(MusedubError):
    """A bad environment or configuration (weights, options): raised at setup."""


class WeightsMismatchError(ConfigError):
    """A checkpoint whose keys or shapes differ from the model built from its config."""
