"""Durations as people write them in config and read them on screen: "1h", "90m", "1h30m", "2d"."""

from __future__ import annotations

import re

from carebox.errors import ConfigError

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")


def parse_duration(value: object, key: str) -> float:
    """Seconds in `value` ("1h30m", "15m", "45s", or a bare number of seconds); ConfigError otherwise."""
    expected = 'a duration such as "1h", "90m", "1h30m", "2d" or a number of seconds'
    if isinstance(value, bool):
        raise ConfigError(key, expected)
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(key, expected + " (not negative)")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(key, expected)
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ConfigError(key, expected)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            raise ConfigError(key, expected)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ConfigError(key, expected)
    return total


def format_duration(seconds: float) -> str:
    """A short human form: "45s", "12m", "1h 05m", "2d 3h"; negative values get a minus sign."""
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600}h"
