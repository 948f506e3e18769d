import pytest

from carebox.duration import format_duration, parse_duration
from carebox.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), ("45s", 45), (30, 30), ("1w", 604800),
     ("250ms", 0.25), ("1.5h", 5400)],
)
def test_parse_duration_accepts_the_usual_forms(text, seconds):
    assert parse_duration(text, "k") == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30", "-5", -5, True, None, "1h-30m"])
def test_parse_duration_rejects_garbage_naming_the_key(text):
    with pytest.raises(ConfigError) as info:
        parse_duration(text, "policies.social.first_response")
    assert "policies.social.first_response" in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (600, "10m"), (3900, "1h 05m"), (63 * 3600, "2d 15h"), (-120, "-2m")]
)
def test_format_duration_is_short_and_readable(seconds, text):
    assert format_duration(seconds) == text
