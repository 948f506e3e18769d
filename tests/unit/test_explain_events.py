"""The SLA events of a conversation read as a community manager says them, in English and French: the clock's name
(the same label as the SLA admin pages), what happened, and the due time (its hour alone on the event's day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from web import explain, i18n

AT = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # 14:00 in Paris
FIRST = {"target": "first_response", "at": AT, "business_due": AT + timedelta(minutes=30),
         "wall_due": AT + timedelta(minutes=15), "business_s": None, "wall_s": None, "detail": ""}
EVENTS = [
    ({**FIRST, "kind": "activate"}, "First response: clock started, due 14:30 (the customer expects an answer by 14:15)",
     "Première réponse : délai démarré, échéance 14:30 (le client attend une réponse avant 14:15)"),
    ({**FIRST, "kind": "fulfil", "wall_s": 720.0, "business_s": 480.0},
     "First response: answered after 12m (business time 8m)",
     "Première réponse : répondu après 12 min (temps ouvré 8 min)"),
    ({**FIRST, "kind": "pause", "detail": "status pending"},
     "First response: paused while the conversation waits on the customer",
     "Première réponse : en pause tant que la conversation attend le client"),
    ({**FIRST, "kind": "breach", "target": "next_response"}, "Next response: breached, it was due 14:30",
     "Réponse suivante : dépassé, l’échéance était 14:30"),
    ({**FIRST, "kind": "policy", "detail": "incident #4: policy social -> incident"},
     "First response: on the incident policy 'incident', due 14:30",
     "Première réponse : politique d’incident « incident », échéance 14:30"),
    ({**FIRST, "kind": "policy", "business_due": AT + timedelta(days=3), "detail": "incident policy over: policy incident -> social"},
     "First response: back on its own policy 'social' after the incident, due Mon 23 Nov 2026 14:00",
     "Première réponse : de retour sur sa politique « social » après l’incident, échéance lun. 23 nov. 2026 14:00"),
    ({**FIRST, "kind": "resolve", "target": "conversation", "business_due": None},
     "Conversation resolved: every clock stops", "Conversation résolue : tous les délais s’arrêtent"),
]


def _read(event: dict, language: str) -> str:
    token = i18n.CURRENT.set(i18n.Locale(language, "Europe/Paris"))
    try:
        [line] = explain.event_lines([event])
    finally:
        i18n.CURRENT.reset(token)
    return line["text"].striptags()


@pytest.mark.parametrize(("event", "english", "french"), EVENTS, ids=[f"{e['kind']}-{e['target']}" for e, _, _ in EVENTS])
def test_an_sla_event_reads_as_a_sentence_in_each_language(event, english, french):
    assert _read(event, "en") == english
    assert _read(event, "fr") == french


def test_the_due_time_keeps_its_exact_instant_and_values_are_escaped():
    token = i18n.CURRENT.set(i18n.Locale("en", "Europe/Paris"))
    try:
        [line] = explain.event_lines([{**FIRST, "kind": "escalate", "detail": "notify <ops>"}])
        [due] = explain.event_lines([{**FIRST, "kind": "resume"}])
    finally:
        i18n.CURRENT.reset(token)
    assert "&lt;ops&gt;" in line["text"] and line["kind"] == "escalate" and line["at"] == AT
    assert f'<time datetime="{FIRST["business_due"].isoformat()}">14:30</time>' in due["text"]
