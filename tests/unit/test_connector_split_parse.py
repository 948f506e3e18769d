"""The pure payload modules split out of mastodon.py, bluesky.py and email.py: still reachable under their old
names, free of network code, and the parsing defects found while splitting them stay fixed."""

from __future__ import annotations

import ast
import importlib
import inspect
from datetime import UTC, datetime

import pytest

from connectors.social import (
    bluesky_parse,
    email_message,
    email_options,
    mastodon_parse,
)

# names the tests, fuzzers and benchmarks import from the connector module: each must be the moved object itself
MOVED = {
    "connectors.social.mastodon": (mastodon_parse, [
        "NETWORK", "VISIBILITIES", "Page", "SseDecoder", "html_to_text", "id_key", "idempotency_key", "newest",
        "parse_event", "parse_link_header", "parse_notification", "parse_notifications", "parse_sent",
        "parse_status", "reply_text", "same_acct",
    ]),
    "connectors.social.bluesky": (bluesky_parse, [
        "NETWORK", "POST_COLLECTION", "MENTION_FEATURE", "REASONS", "advance_cursor", "build_reply_record",
        "decode_cursor", "encode_cursor", "mention_facets", "parse_notification", "post_url", "with_profiles",
        "xrpc_error",
    ]),
    "connectors.social.email": (email_options, ["EmailOptions", "parse_options"]),
}


@pytest.mark.parametrize("module", sorted(MOVED))
def test_the_connector_module_re_exports_every_moved_name_as_the_same_object(module):
    source, names = MOVED[module]
    connector = importlib.import_module(module)
    assert [n for n in names if getattr(connector, n, None) is not getattr(source, n)] == []


@pytest.mark.parametrize("module", [mastodon_parse, bluesky_parse, email_options])
def test_a_parse_module_imports_no_network_code_and_no_connector(module):
    tree = ast.parse(inspect.getsource(module))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    banned = {"aiohttp", "asyncio", "aioimaplib", "aiosmtplib", "connectors._http", "connectors._health",
              "connectors.social.mastodon", "connectors.social.bluesky", "connectors.social.email"}
    assert imported & banned == set()


@pytest.mark.parametrize("html_to_text", [mastodon_parse.html_to_text, email_message.html_to_text])
@pytest.mark.parametrize(("html", "text"), [
    ("<p>down<![foo[bar]]> again</p>", "down<![foo[bar]]> again"),  # html.parser raised AssertionError here
    ("<p>a</p><![if mso]><p>b</p><![endif]>", "a\n\nb"),  # Outlook's conditional sections are understood
])
def test_html_that_html_parser_refuses_is_read_as_text_not_raised(html_to_text, html, text):
    assert html_to_text(html).replace("\n\n", "\n") == text.replace("\n\n", "\n")


def test_an_html_mail_with_an_unknown_marked_section_is_a_mention_not_a_crash():
    raw = (b"From: Ann <ann@example.org>\r\nTo: support@brand.example\r\nSubject: down\r\n"
           b"Message-ID: <1@example.org>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>no signal <![x[since]]> noon</p>")
    mention = email_message.parse_message(raw, account="support@brand.example",
                                          received_at=datetime(2026, 11, 22, 10, 1, tzinfo=UTC))
    assert "no signal" in mention.text and "noon" in mention.text


def test_a_reset_sse_decoder_drops_the_event_in_progress_but_reads_the_next_one():
    decoder = mastodon_parse.SseDecoder()
    assert decoder.feed(b"event: notification\n") is None
    decoder.reset()  # its data line was over-long and skipped
    assert decoder.feed(b"\n") is None
    assert decoder.feed(b"event: notification\n") is None
    assert decoder.feed(b'data: {"id": "2"}\n') is None
    assert decoder.feed(b"\n") == ("notification", '{"id": "2"}')


def test_a_reset_in_the_middle_of_a_multi_line_event_turns_its_rest_into_an_ignored_message():
    decoder = mastodon_parse.SseDecoder()
    decoder.feed(b"event: notification\n")
    decoder.feed(b"data: {\n")
    decoder.reset()
    decoder.feed(b'data: "id": "1"}\n')
    event = decoder.feed(b"\n")
    assert event is not None and event[0] == "message"
    assert mastodon_parse.parse_event(*event, source="m", account="brand") is None
