"""Hypothesis strategies for hostile input: any JSON, and real payloads with fields dropped, retyped or bent.

`bent(sample)` draws one integer and mutates the sample with a seeded Random: an order of magnitude cheaper
than drawing every decision from hypothesis, so a thousand cases per target stay within the CI budget; a
failing test notes the payload it produced (see tests/fuzz/test_parsers._survives).
"""

from __future__ import annotations

import os
import random
import string
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# About a thousand cases per target in CI; benchmarks/reliability.py raises it (CAREBOX_FUZZ_EXAMPLES=100000).
# Each hypothesis example carries BATCH cases grown from one seed: hypothesis' own cost per example dominates
# on a loaded machine, so this keeps a thousand cases per target within the CI budget.
EXAMPLES = int(os.environ.get("CAREBOX_FUZZ_EXAMPLES", "1000"))
BATCH = 10
# Shrinking a failure is slow; CI only needs to know that there is one (CAREBOX_FUZZ_SHRINK=1 to minimise it).
PHASES = tuple(Phase) if os.environ.get("CAREBOX_FUZZ_SHRINK") == "1" else (Phase.explicit, Phase.generate)
FUZZ = settings(max_examples=max(1, EXAMPLES // BATCH), deadline=None, database=None, derandomize=True, phases=PHASES,
                suppress_health_check=list(HealthCheck))

# Values that break naive code: huge and negative epochs, NaN, infinities, odd dates, control characters.
NASTY_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**63, -(2**63), 10**20, 1e308, -1e308, float("nan"), float("inf"), float("-inf"),
    "", " ", "0", "-1", "null", "NaN", "1e999", "9" * 400, "\x00", "\ud800", "\u202e", "²", "<script>alert(1)</script>",
    "2026-02-30T10:00:00Z", "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-11-22T10:00:00", "2026-11-22", "T", "Z",
    "Tue Oct 31 22:10:47 +0000 2017", "Mon Feb 30 99:99:99 +9999 2017", "at://", "did:plc:", "sha256=",
    [], {}, [None], {"": None},
)
NASTY = st.sampled_from(NASTY_VALUES)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | NASTY
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)
_CHARS = string.printable + "éü😡\u202e\x00"
_PLAIN = (None, True, False, 0, 1, "")


def _below(rng: random.Random, n: int) -> int:
    """rng.randrange(n) at a fifth of the cost (it is called ~50 times per payload)."""
    return int(rng.random() * n)


def _text(rng: random.Random) -> str:
    return "".join(rng.choices(_CHARS, k=_below(rng, 12)))


def _scalar(rng: random.Random) -> Any:
    kind = _below(rng, 6)
    if kind == 0:
        return NASTY_VALUES[_below(rng, len(NASTY_VALUES))]
    if kind == 1:
        return rng.randint(-(2**70), 2**70)
    if kind == 2:
        return rng.uniform(-1e12, 1e12)
    if kind == 3:
        return _text(rng)
    return _PLAIN[_below(rng, len(_PLAIN))]


def random_json(rng: random.Random, depth: int = 2) -> Any:
    """Any JSON-ish value, at most `depth` containers deep."""
    kind = _below(rng, 4) if depth > 0 else 0
    if kind == 1:
        return [random_json(rng, depth - 1) for _ in range(_below(rng, 4))]
    if kind == 2:
        return {_text(rng): random_json(rng, depth - 1) for _ in range(_below(rng, 4))}
    return _scalar(rng)


def bend(rng: random.Random, value: Any) -> Any:
    """`value` with some fields dropped, duplicated, truncated or replaced by hostile values."""
    roll = _below(rng, 24)
    if roll == 0:
        return random_json(rng)
    if roll == 1:
        return NASTY_VALUES[_below(rng, len(NASTY_VALUES))]
    if isinstance(value, dict):
        out = {k: bend(rng, v) for k, v in value.items() if _below(rng, 12)}
        if _below(rng, 8) == 0:
            out[_text(rng)] = random_json(rng)
        return out
    if isinstance(value, list):
        items = [bend(rng, v) for v in value if _below(rng, 10)]
        return items + items if _below(rng, 8) == 0 else items
    if isinstance(value, str) and roll == 2:
        return _text(rng)
    if isinstance(value, str) and roll == 3:
        return value[: _below(rng, len(value) + 1)]
    if isinstance(value, int | float) and not isinstance(value, bool) and roll == 2:
        return _scalar(rng)
    return value


def bent(sample: Any) -> st.SearchStrategy[Any]:
    """`sample` (a real payload) bent by a seeded Random."""
    return st.integers(0, 2**64).map(lambda seed: bend(random.Random(seed), sample))


def grow(seed: int, sample: Any) -> list[Any]:
    """BATCH payloads from one seed: mostly `sample` bent, one in four anything at all."""
    rng = random.Random(seed)
    return [random_json(rng, 3) if _below(rng, 4) == 0 else bend(rng, sample) for _ in range(BATCH)]


def payloads(sample: Any) -> st.SearchStrategy[list[Any]]:
    """BATCH near-real payloads built from `sample` (a list, one hypothesis example)."""
    return st.integers(0, 2**64).map(lambda seed: grow(seed, sample))


def many(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """BATCH values of a plain hypothesis strategy (cheap ones: text, binary, numbers)."""
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)
