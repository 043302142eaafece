"""Model names: they become directory names and metric labels, so they are validated."""

import re

MODEL_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class InvalidModelName(ValueError):
    """A model name that is not safe to use as a path or a label."""


def validate_model_name(name: str) -> str:
    """Return ``name`` if it matches ``[a-z0-9][a-z0-9_-]{0,62}``, else raise."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name):
        raise InvalidModelName(
            f"invalid model name {_shown(name)}: use 1 to 63 characters of lowercase letters, "
            "digits, '-' and '_', starting with a letter or digit (for example 'mnist-cnn')"
        )
    return name


def _shown(name: object) -> str:
    """The name as a message may quote it: escaped, and cut if long (a client sent it)."""
    text = name if isinstance(name, str) else repr(name)
    return repr(text[:64]) + (f"... ({len(text):,} characters)" if len(text) > 64 else "")
