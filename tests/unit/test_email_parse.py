"""Pure e-mail parsing: RFC 822 -> InboundMention, quote stripping, HTML to text, reply headers, options."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carebox.errors import BadPayload, ConfigError, ReplyRejected
from carebox.ports import Direction, OutboundReply
from connectors.social.email import (
    build_reply,
    fetched_messages,
    format_cursor,
    html_to_text,
    message_ids,
    parse_cursor,
    parse_message,
    parse_options,
    reply_subject,
    search_uids,
    select_codes,
    strip_quoted,
)

BRAND = "support@brand.example"
RECEIVED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def mail(headers: str, body: str = "Hello\n") -> bytes:
    """An RFC 822 message with CRLF line ends, as it arrives over SMTP."""
    return (headers.strip() + "\n\n" + body).replace("\n", "\r\n").encode()


GMAIL_REPLY = mail(
    """
From: Jane Doe <jane.doe@example.org>
To: Brand Support <support@brand.example>
Subject: Re: Internet down since this morning
Date: Fri, 20 Nov 2026 18:50:12 +0100
Message-ID: <CAF=x9Q@mail.gmail.com>
In-Reply-To: <reply-1@brand.example>
References: <first@mail.gmail.com> <reply-1@brand.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Language: fr-FR
""",
    """Toujours en panne, la box clignote.

Le ven. 20 nov. 2026 à 10:00, Brand Support <support@brand.example> a écrit :
> Nous regardons.
> --
> Brand
""",
)

NEW_THREAD = mail(
    """
From: "Marc Dupont" <Marc@Example.net>
To: support@brand.example
Subject: Facture incorrecte
Date: Sat, 21 Nov 2026 08:15:00 -0000
Message-ID: <1234.abcd@example.net>
Content-Type: text/plain; charset=utf-8
""",
    "On m'a facturé deux fois.\n\n-- \nMarc Dupont\n06 00 00 00 00\n",
)

HTML_ONLY = mail(
    """
From: bob@example.com
To: support@brand.example
Subject: Re: order
Message-ID: <html-1@example.com>
In-Reply-To: <p@brand.example>
Date: Sun, 22 Nov 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
""",
    '<html><head><style>p{color:red}</style></head><body><p>Where is my&nbsp;order?</p>'
    '<div class="gmail_quote">On Sat, Bob wrote:<blockquote>old text</blockquote></div></body></html>',
)

MULTIPART = mail(
    """
From: Ann <ann@example.com>
To: support@brand.example
Subject: Question
Message-ID: <mp-1@example.com>
Date: Sun, 22 Nov 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"
""",
    """--b1
Content-Type: text/plain; charset=utf-8

Plain wins.
--b1
Content-Type: text/html; charset=utf-8

<p>HTML loses.</p>
--b1--
""",
)


def test_reply_mail_maps_threading_author_and_time():
    m = parse_message(GMAIL_REPLY, account=BRAND, received_at=RECEIVED)
    assert (m.network, m.account, m.external_id) == ("email", BRAND, "CAF=x9Q@mail.gmail.com")
    assert (m.author_id, m.author_handle, m.author_name) == ("jane.doe@example.org", "jane.doe@example.org", "Jane Doe")
    assert m.in_reply_to == "reply-1@brand.example"
    assert m.thread_key == "first@mail.gmail.com"
    assert m.created_at == datetime(2026, 11, 20, 17, 50, 12, tzinfo=UTC)
    assert m.public is False and m.direction is Direction.INBOUND
    assert m.lang_hint == "fr-FR"


def test_reply_text_is_the_new_text_only():
    m = parse_message(GMAIL_REPLY, account=BRAND, received_at=RECEIVED)
    assert m.text == "Toujours en panne, la box clignote."
    assert "Nous regardons" in m.raw["body"]


def test_first_message_of_a_thread_carries_its_subject_and_is_its_own_thread():
    m = parse_message(NEW_THREAD, account=BRAND, received_at=RECEIVED)
    assert m.text == "Facture incorrecte\n\nOn m'a facturé deux fois."
    assert m.thread_key == m.external_id == "1234.abcd@example.net"
    assert m.in_reply_to is None
    assert m.author_id == "marc@example.net" and m.author_handle == "Marc@Example.net"
    assert m.created_at == datetime(2026, 11, 21, 8, 15, tzinfo=UTC)


def test_html_only_body_is_converted_to_text_without_quote():
    m = parse_message(HTML_ONLY, account=BRAND, received_at=RECEIVED)
    assert m.text == "Where is my order?"


def test_text_plain_part_preferred_over_html():
    assert parse_message(MULTIPART, account=BRAND, received_at=RECEIVED).text == "Question\n\nPlain wins."


def test_mail_from_the_brand_address_is_outbound():
    raw = NEW_THREAD.replace(b'"Marc Dupont" <Marc@Example.net>', b"Support <SUPPORT@brand.example>")
    assert parse_message(raw, account=BRAND, received_at=RECEIVED).direction is Direction.OUTBOUND


@pytest.mark.parametrize(
    ("header", "automated"),
    [
        ("Auto-Submitted: auto-replied", True),
        ("Auto-Submitted: no", False),
        ("Precedence: bulk", True),
        ("X-Autoreply: yes", True),
        ("X-Mailer: Thunderbird", False),
    ],
)
def test_auto_replies_are_flagged_automated(header, automated):
    raw = NEW_THREAD.replace(b"Subject:", header.encode() + b"\r\nSubject:")
    assert parse_message(raw, account=BRAND, received_at=RECEIVED).automated is automated


def test_missing_date_falls_back_to_received_time():
    raw = NEW_THREAD.replace(b"Date: Sat, 21 Nov 2026 08:15:00 -0000\r\n", b"")
    assert parse_message(raw, account=BRAND, received_at=RECEIVED).created_at == RECEIVED


def test_date_out_of_range_in_utc_falls_back_to_received_time():  # regression: OverflowError
    raw = NEW_THREAD.replace(b"Sat, 21 Nov 2026 08:15:00 -0000", b"Fri, 31 Dec 9999 23:59:59 -1200")
    assert parse_message(raw, account=BRAND, received_at=RECEIVED).created_at == RECEIVED


def test_missing_message_id_gets_a_stable_synthetic_one():
    raw = NEW_THREAD.replace(b"Message-ID: <1234.abcd@example.net>\r\n", b"")
    first = parse_message(raw, account=BRAND, received_at=RECEIVED).external_id
    assert first == parse_message(raw, account=BRAND, received_at=RECEIVED).external_id
    assert first.endswith("@carebox.invalid")


def test_references_without_in_reply_to_give_the_parent():
    raw = mail("From: a@b.c\nMessage-ID: <x@b.c>\nReferences: <r1@b.c> <r2@b.c>\nSubject: Re: hi", "ok\n")
    m = parse_message(raw, account=BRAND, received_at=RECEIVED)
    assert (m.in_reply_to, m.thread_key) == ("r2@b.c", "r1@b.c")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"   \r\n", "empty message"),
        (mail("To: support@brand.example\nSubject: no sender"), "no usable From address"),
        (mail("From: not an address\nSubject: x"), "no usable From address"),
        (b"\x00\xff garbage \xfe", "no usable From address"),
    ],
)
def test_unusable_messages_are_bad_payloads(raw, reason):
    with pytest.raises(BadPayload, match=reason):
        parse_message(raw, account=BRAND, received_at=RECEIVED)


def test_broken_charset_does_not_crash():
    raw = NEW_THREAD.replace(b"charset=utf-8", b"charset=x-unknown-9")
    assert "Facture" in parse_message(raw, account=BRAND, received_at=RECEIVED).text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks!\n\nOn Mon, 1 Jan 2026 at 10:00, Bob <b@x.y> wrote:\n> hi", "Thanks!"),
        ("Thanks!\nOn Mon, 1 Jan 2026 at 10:00, Bob Smith\n<b@x.y> wrote:\n> hi", "Thanks!"),
        ("Merci\n\nLe lun. 1 janv. 2026 à 10:00, Bob a écrit :\n> salut", "Merci"),
        ("Yes\n\n-----Original Message-----\nFrom: x", "Yes"),
        ("Oui\n\n-----Message d'origine-----\nDe : x", "Oui"),
        ("Fine\n\nFrom: Support <s@b.c>\nSent: Monday\nTo: me\nSubject: x\n\nold", "Fine"),
        ("Ok\n\nDe : Support\nEnvoyé : lundi\nÀ : moi\nObjet : x", "Ok"),
        ("Body\n-- \nJane\nCEO", "Body"),
        ("Body\n\nSent from my iPhone", "Body"),
        ("> quoted first\nmy answer\n> more quoted\nsecond answer", "my answer\nsecond answer"),
        ("From: the start of a sentence is fine", "From: the start of a sentence is fine"),
        ("> only quoted", ""),
    ],
)
def test_strip_quoted_keeps_only_the_new_text(text, expected):
    assert strip_quoted(text) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("line<br>next", "line\nnext"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ("<script>x()</script>ok &amp; done", "ok & done"),
        ("<p>keep<blockquote><p>nested<blockquote>deep</blockquote>still quoted</blockquote>after</p>", "keep\n\nafter"),
        ("<p>unclosed <b>tags", "unclosed tags"),
    ],
)
def test_html_to_text(html, expected):
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Internet down", "Re: Internet down"),
        ("Re: Internet down", "Re: Internet down"),
        ("RE : Facture", "RE : Facture"),
        ("AW: Frage", "AW: Frage"),
        ("  spaced   out ", "Re: spaced out"),
    ],
)
def test_reply_subject_adds_re_once(subject, expected):
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b>", ["a@b"]),
        (" <a@b>\r\n <c@d> ", ["a@b", "c@d"]),
        ("bare@id", ["bare@id"]),
        ("", []),
        (None, []),
    ],
)
def test_message_ids(value, expected):
    assert message_ids(value) == expected


def reply(**kw):
    base = {
        "network": "email",
        "account": BRAND,
        "in_reply_to": "CAF=x9Q@mail.gmail.com",
        "text": "We are on it.",
        "public": False,
        "customer_handle": "jane.doe@example.org",
        "customer_id": "jane.doe@example.org",
        "thread_key": "first@mail.gmail.com",
    }
    return OutboundReply(**{**base, **kw})


def test_reply_threads_with_in_reply_to_and_references():
    msg = build_reply(
        reply(),
        from_addr=BRAND,
        from_name="Brand Support",
        subject="Re: Internet down",
        references=["first@mail.gmail.com", "reply-1@brand.example"],
        message_id="new@brand.example",
        date=RECEIVED,
    )
    assert msg["In-Reply-To"] == "<CAF=x9Q@mail.gmail.com>"
    assert msg["References"] == "<first@mail.gmail.com> <reply-1@brand.example> <CAF=x9Q@mail.gmail.com>"
    assert msg["Subject"] == "Re: Internet down"
    assert msg["From"] == "Brand Support <support@brand.example>"
    assert msg["To"] == "jane.doe@example.org"
    assert msg["Message-ID"] == "<new@brand.example>"


def test_reply_without_known_references_uses_thread_root_and_parent():
    msg = build_reply(
        reply(), from_addr=BRAND, from_name="", subject="x", references=(), message_id="n@b", date=RECEIVED
    )
    assert msg["References"] == "<first@mail.gmail.com> <CAF=x9Q@mail.gmail.com>"


def test_reply_without_an_address_is_rejected():
    with pytest.raises(ReplyRejected):
        build_reply(
            reply(customer_handle="jane", customer_id="42"),
            from_addr=BRAND,
            from_name="",
            subject="x",
            references=(),
            message_id="n@b",
            date=RECEIVED,
        )


def test_options_defaults():
    opts = parse_options({"name": "mail", "account": BRAND, "inbound": "smtp"}, "connectors.mail")
    assert opts.recipients == (BRAND,)
    assert (opts.listen_host, opts.listen_port, opts.smtp_port, opts.smtp_security) == ("127.0.0.1", 2525, 587, "starttls")
    assert opts.smtp_timeout == 30.0


def test_tls_security_defaults_to_port_465():
    assert parse_options({"name": "m", "account": BRAND, "inbound": "smtp", "smtp_security": "tls"}, "c").smtp_port == 465


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"account": BRAND}, "connectors.mail.name"),
        ({"name": "mail"}, "connectors.mail.account"),
        ({"name": "mail", "account": "not-an-address"}, "connectors.mail.account"),
        ({"name": "mail", "account": BRAND, "recipients": []}, "connectors.mail.recipients"),
        ({"name": "mail", "account": BRAND, "recipients": ["x"]}, "connectors.mail.recipients"),
        ({"name": "mail", "account": BRAND, "smtp_security": "ssl"}, "connectors.mail.smtp_security"),
        ({"name": "mail", "account": BRAND, "smtp_port": 0}, "connectors.mail.smtp_port"),
        ({"name": "mail", "account": BRAND, "listen_port": "25"}, "connectors.mail.listen_port"),
        ({"name": "mail", "account": BRAND, "smtp_username": "u"}, "connectors.mail.smtp_password_env"),
        ({"name": "mail", "account": BRAND, "smtp_timeout": "soon"}, "connectors.mail.smtp_timeout"),
        ({"name": "mail", "account": BRAND, "send_attempts": True}, "connectors.mail.send_attempts"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        parse_options({"inbound": "smtp", **options}, "connectors.mail")
    assert info.value.key == key


IMAP = {"name": "mail", "account": BRAND, "inbound": "imap", "imap_host": "imap.example.net", "imap_password_env": "PW"}


def test_imap_options_defaults():
    opts = parse_options(IMAP, "connectors.mail")
    assert (opts.imap_port, opts.imap_security, opts.imap_username, opts.mailbox) == (993, "tls", BRAND, "INBOX")
    assert (opts.poll_interval, opts.start_at, opts.batch_size) == (60.0, "new", 50)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({**IMAP, "inbound": None}, "connectors.mail.inbound"),
        ({**IMAP, "inbound": "pop3"}, "connectors.mail.inbound"),
        ({k: v for k, v in IMAP.items() if k != "imap_host"}, "connectors.mail.imap_host"),
        ({k: v for k, v in IMAP.items() if k != "imap_password_env"}, "connectors.mail.imap_password_env"),
        ({**IMAP, "imap_security": "starttls"}, "connectors.mail.imap_security"),
        ({**IMAP, "start_at": "yesterday"}, "connectors.mail.start_at"),
        ({**IMAP, "poll_interval": "0s"}, "connectors.mail.poll_interval"),
        ({**IMAP, "batch_size": 0}, "connectors.mail.batch_size"),
        ({**IMAP, "idle": "yes"}, "connectors.mail.idle"),
    ],
)
def test_bad_imap_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        parse_options(options, "connectors.mail")
    assert info.value.key == key


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [("1700000000:42", (1700000000, 42)), (None, None), ("", None), ("42", None), ("a:b", None)],
)
def test_cursor_round_trip_and_unreadable_cursors(cursor, expected):
    assert parse_cursor(cursor) == expected
    if expected:
        assert format_cursor(*expected) == cursor


def test_select_codes_read_uidvalidity_and_uidnext():
    lines = [b"3 EXISTS", b"OK [UIDVALIDITY 3857529045] UIDs valid", b"OK [UIDNEXT 4392] Predicted", b"[READ-WRITE] done"]
    assert select_codes(lines) == (3857529045, 4392)
    assert select_codes([b"[READ-WRITE] done"]) == (None, None)


@pytest.mark.parametrize(
    ("lines", "uids"),
    [
        ([b"4 7 5", b"SEARCH completed"], [4, 5, 7]),
        ([b"SEARCH 4 7", b"SEARCH completed"], [4, 7]),
        ([b"", b"SEARCH completed"], []),
        ([b"SEARCH completed"], []),
    ],
)
def test_search_uids(lines, uids):
    assert search_uids(lines) == uids


def test_fetched_messages_with_uid_before_or_after_the_literal():
    lines = [
        b"1 FETCH (UID 11 BODY[] {5}",
        bytearray(b"first"),
        b")",
        b"2 FETCH (BODY[] {6}",
        bytearray(b"second"),
        b" UID 12)",
        b"3 FETCH (FLAGS (\\Seen))",
        b"FETCH completed",
    ]
    assert fetched_messages(lines) == [(11, b"first"), (12, b"second")]


def test_documented_config_fragment_parses():
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs/config-fragments/connectors-email-webhook.toml"
    entries = [c for c in tomllib.loads(path.read_text())["connectors"] if c["type"] == "email"]
    assert [parse_options(e, "connectors.x").inbound for e in entries] == ["imap"]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_message_never_crashes_on_arbitrary_bytes(raw):
    try:
        parse_message(raw, account=BRAND, received_at=RECEIVED)
    except BadPayload:
        pass


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([GMAIL_REPLY, NEW_THREAD, HTML_ONLY, MULTIPART]), st.data())
def test_parse_message_never_crashes_on_damaged_mail(raw, data):
    cut = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(max_size=40))
    damaged = raw[:cut] + junk + raw[cut + len(junk) :]
    try:
        m = parse_message(damaged, account=BRAND, received_at=RECEIVED)
    except BadPayload:
        return
    assert m.created_at.tzinfo is not None and m.external_id and m.text
