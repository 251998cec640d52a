"""The errors every floor of the core raises: the bottom floor, importing nothing of the core."""


class ConfigError(ValueError):
    """A config value is not allowed; the message says which, and what is."""


def shown(value: object, *, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (a link may hold a page)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
