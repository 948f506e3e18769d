"""`carebox classify`: triage messages read from stdin, one JSON line out per line in."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, TextIO

from carebox import config
from carebox.errors import BadPayload, ConfigError
from carebox.triage import Triage, TriageInput, Triager, parse_settings

log = logging.getLogger(__name__)

# Optional JSON fields and the type each must have.
_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "followers": ((int, type(None)), "an integer or null"),
    "public": ((bool,), "true or false"),
    "verified": ((bool,), "true or false"),
    "reposts": ((int,), "an integer"),
    "recent_contacts": ((int,), "an integer"),
    "lang": ((str, type(None)), "a language code or null"),
}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `classify` command."""
    parser = subparsers.add_parser(
        "classify",
        help="triage messages from stdin (language, polarity, category, priority)",
        description="Read one message per line on stdin: plain text, or a JSON object with `text` and "
                    "optional `followers`, `public`, `verified`, `reposts`, `recent_contacts`, `lang`. "
                    "Write one JSON line per message with lang, polarity, category, cluster_key, priority "
                    'and reason; a line that cannot be read gives {"line": N, "error": ...}. '
                    "Blank lines are skipped.",
    )
    parser.add_argument("--langs", default=None, metavar="CODES",
                        help="comma-separated languages to detect among (default: [triage] languages, else en,fr)")
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file whose [triage] table is used (default: $CAREBOX_CONFIG, "
                             "else built-in defaults)")
    parser.add_argument("--no-learned-table", dest="learned_table", action="store_false", default=None,
                        help="score with TextBlob and the care lexicon only (as [triage] learned_table = false)")
    parser.set_defaults(func=run, handler=run)


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Handler of `carebox classify`; 2 when --langs or the configuration is not valid."""
    try:
        raw = dict(config.load(getattr(args, "config", None)).raw.get("triage", {}))
    except ConfigError as err:
        print(f"carebox classify: {err}", file=sys.stderr)
        return 2
    if getattr(args, "langs", None) is not None:
        raw["languages"] = [code.strip() for code in args.langs.split(",") if code.strip()]
        if raw.get("default_language") not in raw["languages"]:
            raw.pop("default_language", None)  # the configured default may not be among --langs
    if getattr(args, "learned_table", None) is not None:
        raw["learned_table"] = args.learned_table
    try:
        triager = Triager(parse_settings(raw))
    except ConfigError as err:
        where = "--langs" if err.key == "triage.languages" and getattr(args, "langs", None) else err.key
        print(f"carebox classify: {where}: expected {err.expected}", file=sys.stderr)
        return 2
    classify_stream(triager, stdin or sys.stdin, stdout or sys.stdout)
    return 0


def classify_stream(triager: Triager, lines: TextIO, out: TextIO) -> int:
    """Triage every non-blank line of `lines` into `out`; returns the number of lines in error."""
    errors = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = _result(triager.triage_many([parse_line(line)])[0])
        except BadPayload as err:
            errors += 1
            result = {"error": err.reason}
        except Exception as err:  # one odd message must not stop the stream
            log.exception("classify: line %d failed", number)
            errors += 1
            result = {"error": f"internal error: {err}"}
        out.write(json.dumps({"line": number, **result}, ensure_ascii=False) + "\n")
        out.flush()
    return errors


def parse_line(line: str) -> TriageInput:
    """One input line as a TriageInput; BadPayload with a short reason when it cannot be read."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return TriageInput(text=stripped)
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as err:
        raise BadPayload(f"invalid JSON: {err.msg} at column {err.colno}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
        raise BadPayload('a JSON line needs a string "text"')
    for key, (kinds, expected) in _FIELDS.items():
        value = doc.get(key)
        if key in doc and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            raise BadPayload(f'"{key}" must be {expected}')
    return TriageInput(
        text=doc["text"],
        followers=doc.get("followers"),
        public=doc.get("public", True),
        verified=doc.get("verified", False),
        reposts=doc.get("reposts", 0),
        recent_contacts=doc.get("recent_contacts", 0),
        lang_hint=doc.get("lang"),
    )


def _result(t: Triage) -> dict[str, Any]:
    return {
        "lang": t.language,
        "polarity": t.polarity,
        "category": t.category.value,
        "cluster_key": t.cluster_key,
        "priority": t.priority.value,
        "reason": t.reason,
    }


def main(argv: list[str] | None = None) -> int:
    """Run `classify` on its own: python -m carebox.commands.classify [--langs en,fr]."""
    parser = argparse.ArgumentParser(prog="carebox")
    register(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["classify", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
