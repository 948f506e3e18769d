"""Feeding HTML from the networks to html.parser without letting an odd construct stop a connector."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from typing import TypeVar

P = TypeVar("P", bound=HTMLParser)


def parsed(make: Callable[[], P], html: str) -> P:
    """A fresh parser from `make` fed the whole of `html`. html.parser refuses unknown marked sections
    (`<![x[`, AssertionError): those are then read as text (Outlook's `<![if mso]>` is known and kept)."""
    parser = make()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:
        parser = make()
        parser.feed(html.replace("<![", "&lt;!["))
        parser.close()
    return parser
