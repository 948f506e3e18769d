"""Triage rules: language, category with outage cluster key, priority from config, `carebox classify`."""

from __future__ import annotations

import argparse
import io
import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from carebox.commands import classify
from carebox.errors import ConfigError
from carebox.ports import Category, Priority
from carebox.sentiment import SentimentAnalyzer
from carebox.triage import TriageInput, Triager, TriageSettings, parse_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "care_messages.jsonl"
CASES = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]
TRIAGER = Triager()


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:40] for c in CASES])
def test_hand_written_care_messages_get_their_expected_labels(case: dict[str, Any]) -> None:
    t = TRIAGER.triage(case["text"])
    assert (t.language, t.category.value, t.cluster_key) == (case["lang"], case["category"], case["cluster_key"])
    if case["sentiment"] == "negative":
        assert t.polarity < 0
    elif case["sentiment"] == "positive":
        assert t.polarity > 0


def test_fixtures_cover_every_category_in_both_languages() -> None:
    seen = {(c["lang"], c["category"]) for c in CASES}
    wanted = {(lang, cat) for lang in ("en", "fr") for cat in ("outage", "complaint", "question", "praise", "spam")}
    assert wanted <= seen


@pytest.mark.parametrize(
    ("text", "lang"),
    [("merci !", "fr"), ("still down", "en"), ("thanks", "en"), ("bonjour", "fr"), ("toujours en panne", "fr"),
     ("not working", "en"), ("Is there an outage in Paris right now?", "en"),
     ("Est-ce que le réseau est coupé à Paris ?", "fr")],
)
def test_language_is_detected_even_on_very_short_texts(text: str, lang: str) -> None:
    assert TRIAGER.triage(text).language == lang


def test_a_language_hint_among_the_configured_languages_wins() -> None:
    assert TRIAGER.triage("still down", lang_hint="fr-FR").language == "fr"


def test_a_language_hint_outside_the_configured_languages_is_ignored() -> None:
    assert TRIAGER.triage("still down", lang_hint="de").language == "en"


def test_detection_is_restricted_to_the_configured_languages() -> None:
    triager = Triager(parse_settings({"languages": ["en", "de"]}))
    t = triager.triage("Toujours pas de réseau depuis ce matin, c'est inadmissible")
    assert t.language in ("en", "de")


def test_text_without_letters_falls_back_to_the_default_language() -> None:
    assert TRIAGER.triage("?!! 112 :(").language == "en"


def test_outage_cluster_key_prefers_the_specific_service_over_the_network() -> None:
    assert TRIAGER.triage("Plus de réseau 4G depuis ce matin").cluster_key == "4g"


def test_outage_word_without_a_service_is_still_an_outage_without_cluster_key() -> None:
    t = TRIAGER.triage("Huge outage again, nothing works")
    assert (t.category, t.cluster_key) == (Category.OUTAGE, None)


def test_every_decision_carries_a_reason_naming_category_and_priority() -> None:
    t = TRIAGER.triage("app not working")
    assert t.reason.startswith("outage: app") and f"{t.priority.value}:" in t.reason


BASE = "The app is not working"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"public": False}, Priority.P2),
        ({}, Priority.P1),
        ({"followers": 250_000, "public": False}, Priority.P1),
        ({"recent_contacts": 3, "public": False}, Priority.P1),
        ({"verified": True, "public": False}, Priority.P1),
    ],
)
def test_outage_priority_rises_with_reach_publicity_and_repeat_contact(kwargs: dict[str, Any], expected: Priority) -> None:
    assert TRIAGER.triage(BASE, **kwargs).priority is expected


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("How do I change my plan?", {}, Priority.P3),
        ("Thanks, all sorted!", {}, Priority.P4),
        ("Thanks, all sorted!", {"followers": 1_000_000, "verified": True}, Priority.P4),
        ("Worst service ever, I want to cancel", {"public": False}, Priority.P2),
        ("Worst service ever, I want to cancel", {"public": False, "recent_contacts": 1}, Priority.P2),
        ("Worst service ever, I want to cancel", {"followers": 20_000}, Priority.P1),
        ("I need this fixed, it is urgent, my mother is in hospital", {"public": False}, Priority.P2),
        ("Follow back for free followers!", {"followers": 5_000_000, "verified": True}, Priority.P4),
    ],
)
def test_priority_table(text: str, kwargs: dict[str, Any], expected: Priority) -> None:
    assert TRIAGER.triage(text, **kwargs).priority is expected


def test_urgency_word_raises_priority() -> None:
    calm = TRIAGER.triage("my bill is wrong", public=False)
    urgent = TRIAGER.triage("my bill is wrong, urgent", public=False)
    assert (calm.priority, urgent.priority) == (Priority.P2, Priority.P1)
    assert 'urgent "urgent" +2' in urgent.reason


def test_spam_is_always_p4() -> None:
    t = TRIAGER.triage("Win a free iPhone!! check out my profile, crypto giveaway", followers=10**7)
    assert (t.category, t.priority) == (Category.SPAM, Priority.P4)


def test_triage_many_gives_the_same_results_as_triage() -> None:
    items = [TriageInput(c["text"], followers=i * 5000, public=i % 2 == 0) for i, c in enumerate(CASES)]
    assert TRIAGER.triage_many(items) == [
        TRIAGER.triage(i.text, followers=i.followers, public=i.public) for i in items
    ]


def test_batch_inputs_and_results_are_picklable_for_a_process_pool() -> None:
    item = TriageInput("Panne de réseau", followers=10, lang_hint="fr")
    assert pickle.loads(pickle.dumps(item)) == item
    result = TRIAGER.triage_many([item])[0]
    assert pickle.loads(pickle.dumps(result)) == result


def test_empty_settings_give_the_defaults() -> None:
    assert parse_settings({}) == TriageSettings()


def test_thresholds_and_points_are_read_from_config() -> None:
    settings = parse_settings({"priority": {"p1": 20, "p2": 15, "p3": 10}, "points": {"outage": 1}})
    assert Triager(settings).triage(BASE).priority is Priority.P4


def test_configured_words_extend_urgency_spam_services_and_lexicon() -> None:
    settings = parse_settings({
        "words": {"urgency": ["funeral"], "spam": ["visit my shop"], "services": {"acmepay": "payment"}},
        "lexicon": {"en": {"meh": -0.6}},
    })
    triager = Triager(settings)
    assert "funeral" in triager.triage("bill wrong before the funeral").reason
    assert triager.triage("visit my shop now").category is Category.SPAM
    assert triager.triage("acmepay is down").cluster_key == "payment"
    assert triager.triage("meh").polarity < 0


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"languages": "en"}, "triage.languages"),
        ({"languages": []}, "triage.languages"),
        ({"languages": ["english"]}, "triage.languages"),
        ({"default_language": "de"}, "triage.default_language"),
        ({"priority": {"p1": -1}}, "triage.priority.p1"),
        ({"priority": {"p1": 2, "p2": 5}}, "triage.priority"),
        ({"priority": "high"}, "triage.priority"),
        ({"points": {"outage": "4"}}, "triage.points.outage"),
        ({"points": {"loudness": 2}}, "triage.points.loudness"),
        ({"points": {"urgent": True}}, "triage.points.urgent"),
        ({"sentiment": {"negative": -3}}, "triage.sentiment.negative"),
        ({"reach": {"followers_high": 1.5}}, "triage.reach.followers_high"),
        ({"words": {"urgency": "asap"}}, "triage.words.urgency"),
        ({"words": {"services": {"acmepay": 3}}}, "triage.words.services"),
        ({"lexicon": {"de": {"gut": 0.5}}}, "triage.lexicon.de"),
        ({"lexicon": {"en": {"meh": 2}}}, "triage.lexicon.en.meh"),
        ({"learned_table": "no"}, "triage.learned_table"),
        ({"learned_table": 0}, "triage.learned_table"),
    ],
)
def test_bad_config_values_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    assert info.value.key == key


def test_language_unknown_to_the_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Triager(replace(TriageSettings(), languages=("en", "zz")))
    assert info.value.key == "triage.languages"


def test_learned_table_is_on_by_default_and_switched_off_by_config() -> None:
    assert TriageSettings().learned_table is True
    assert parse_settings({"learned_table": False}).learned_table is False


def test_triager_without_learned_table_scores_with_the_care_layer_alone() -> None:
    care_only = SentimentAnalyzer(learned=False)
    off = Triager(parse_settings({"learned_table": False}))
    texts = [(c["text"], c["lang"]) for c in CASES]
    assert all(off.triage(t, lang_hint=lang).polarity == round(care_only.polarity(t, lang), 4) for t, lang in texts)
    # and the switch matters: with the table on, some of the same messages score differently
    assert any(TRIAGER.triage(t, lang_hint=lang).polarity != round(care_only.polarity(t, lang), 4) for t, lang in texts)


def _classify(stdin: str, langs: str | None = "en,fr", **options: Any) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    args = argparse.Namespace(langs=langs, config=options.get("config"), learned_table=options.get("learned_table"))
    code = classify.run(args, stdin=io.StringIO(stdin), stdout=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_classify_reads_learned_table_from_the_config_file_and_the_flag(tmp_path: Path) -> None:
    texts = [c["text"] for c in CASES]
    care_only = SentimentAnalyzer(learned=False)
    expected = [round(care_only.polarity(t, TRIAGER.triage(t).language), 4) for t in texts]
    path = tmp_path / "carebox.toml"
    path.write_text('[triage]\nlanguages = ["fr", "en"]\ndefault_language = "fr"\nlearned_table = false\n')
    stdin = "\n".join(texts) + "\n"
    for options in ({"config": str(path), "langs": None}, {"learned_table": False}):
        code, rows = _classify(stdin, **options)
        assert code == 0
        assert [round(r["polarity"], 4) for r in rows] == expected
    _code, rows = _classify(stdin)
    assert [round(r["polarity"], 4) for r in rows] != expected


def test_classify_reports_a_bad_config_file_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "carebox.toml"
    path.write_text("[triage]\nlearned_table = \"maybe\"\n")
    code, rows = _classify("hello\n", config=str(path))
    assert (code, rows) == (2, [])
    assert f"{path}: triage.learned_table: expected true or false" in capsys.readouterr().err


def test_classify_writes_one_json_line_per_input_line() -> None:
    code, rows = _classify('still down\n{"text": "Plus de 4G", "followers": 200000, "public": false}\n')
    assert code == 0
    assert [r["lang"] for r in rows] == ["en", "fr"]
    assert {"lang", "polarity", "category", "priority", "reason", "cluster_key"} <= set(rows[1])
    assert rows[1]["cluster_key"] == "4g"


def test_classify_reports_a_bad_line_and_goes_on() -> None:
    code, rows = _classify('{oops\n{"text": 3}\n{"text": "hi", "public": "yes"}\n\nmerci !\n')
    assert code == 0
    assert [("error" in r) for r in rows] == [True, True, True, False]
    assert rows[-1]["line"] == 5 and rows[-1]["lang"] == "fr"


def test_classify_rejects_unknown_languages() -> None:
    code, rows = _classify("hello\n", langs="en,xx")
    assert (code, rows) == (2, [])


def test_classify_is_registered_as_a_subcommand() -> None:
    parser = argparse.ArgumentParser()
    classify.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["classify", "--langs", "fr"])
    assert args.func is classify.run and args.langs == "fr"


def test_the_documented_config_fragment_parses_to_the_defaults() -> None:
    import tomllib

    fragment = Path(__file__).resolve().parents[2] / "docs" / "config-fragments" / "triage.toml"
    doc = tomllib.loads(fragment.read_text(encoding="utf-8"))
    assert parse_settings(doc["triage"]) == TriageSettings()


@pytest.mark.parametrize("text", ["i have a question", "Hi, I have a question about my bill", "j'ai une question sur ma facture"])
def test_a_message_that_says_it_has_a_question_is_a_question_not_a_complaint(text):
    assert Triager().triage(text).category is Category.QUESTION
