"""config.example.toml is assembled from the documented fragments in docs/config-fragments/ and must stay so.

Regenerate it with `python -m tests.unit.test_config_example --write`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = ROOT / "docs" / "config-fragments"
EXAMPLE = ROOT / "config.example.toml"
# Sections in reading order; connector fragments come last and commented out (they need credentials).
ORDER = ("00-core", "sla", "triage", "outage", "incidents", "notify", "web", "reports", "privacy", "scaleout")


def _commented(text: str) -> str:
    return "\n".join(line if not line.strip() or line.lstrip().startswith("#") else "# " + line
                     for line in text.splitlines())


def assemble() -> str:
    """The example file's expected text."""
    parts = [(FRAGMENTS / f"{name}.toml").read_text(encoding="utf-8").strip() for name in ORDER
             if (FRAGMENTS / f"{name}.toml").exists()]
    connectors = sorted(FRAGMENTS.glob("connectors-*.toml"))
    if connectors:
        parts.append("# ==== More connectors: uncomment a block, set its secrets in the environment ====")
        parts += [_commented(path.read_text(encoding="utf-8").strip()) for path in connectors]
    return "\n\n".join(parts) + "\n"


def test_the_example_configuration_is_the_assembly_of_the_fragments():
    assert EXAMPLE.read_text(encoding="utf-8") == assemble(), "run: python -m tests.unit.test_config_example --write"


def test_every_fragment_is_in_the_example():
    known = set(ORDER)
    for path in FRAGMENTS.glob("*.toml"):
        assert path.stem in known or path.stem.startswith("connectors-"), f"{path.name} is not assembled"


if __name__ == "__main__" and "--write" in sys.argv:
    EXAMPLE.write_text(assemble(), encoding="utf-8")
    print(f"wrote {EXAMPLE}")
