"""[incidents] settings: the SLA policy linked conversations switch to, and the acknowledgement templates
per network and language sent to every linked conversation."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from carebox.errors import ConfigError
from carebox.sla_policy import SlaSettings

DEFAULT = "*"  # the templates that apply to every network without its own
PLACEHOLDERS = frozenset({"service"})
# which incidents switch to the incident policy as they open, without anyone pressing the button
AUTO_POLICY: Mapping[str, frozenset[str]] = MappingProxyType({
    "off": frozenset(), "detector": frozenset({"detector"}), "all": frozenset({"detector", "manual"})})
SERVICE = {"en": "our service", "fr": "notre service"}  # {service} when the incident names no cluster
TEMPLATES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    DEFAULT: MappingProxyType({
        "en": "We're aware of an issue affecting {service} and our teams are on it. We'll update you here.",
        "fr": ("Nous avons connaissance d'un incident sur {service} et nos équipes sont mobilisées. "
               "Nous vous tenons informé ici."),
    }),
    # short forms for the networks that count characters tightly (X: 280, Bluesky: 300)
    "x": MappingProxyType({
        "en": "Known issue with {service}: our teams are on it. We'll update you here.",
        "fr": "Incident connu sur {service} : nos équipes sont mobilisées. Suite ici.",
    }),
    "bluesky": MappingProxyType({
        "en": "Known issue with {service}: our teams are on it. We'll update you here.",
        "fr": "Incident connu sur {service} : nos équipes sont mobilisées. Suite ici.",
    }),
})


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    """The incident SLA policy (None: no switch offered), which incidents switch to it as they open, and the
    acknowledgement templates."""

    policy: str | None = None
    auto_policy: str = "detector"
    templates: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: TEMPLATES)

    def switches_on_open(self, source: str) -> bool:
        """Whether an incident opened by `source` ("detector", "manual") goes onto the incident policy at once."""
        return self.policy is not None and source in AUTO_POLICY.get(self.auto_policy, frozenset())

    def template(self, network: str, language: str | None, languages: Sequence[str] = ("en", "fr")) -> tuple[str, str]:
        """(language used, template) for a conversation: the network's own template in the conversation's
        language, else the default one; an unknown language falls back to the first configured language."""
        for_network = {**self.templates.get(DEFAULT, {}), **self.templates.get(network, {})}
        lang = pick_language(language, [x for x in languages if x in for_network] or sorted(for_network))
        return lang, for_network.get(lang, "")


def pick_language(language: str | None, available: Sequence[str]) -> str:
    """The available language matching `language` ("fr-CA" -> "fr"), else the first available one."""
    base = (language or "").lower().split("-")[0].split("_")[0]
    return base if base in available else (available[0] if available else "en")


def render(template: str, service: str | None, language: str) -> str:
    """A template with {service} filled: the incident's cluster key, or "our service" in that language."""
    return template.format(service=service or SERVICE.get(language, SERVICE["en"]))


def parse_settings(raw: Mapping[str, Any], sla: SlaSettings) -> IncidentSettings:
    """IncidentSettings from the [incidents] table; ConfigError names the key and what was expected."""
    for unknown in sorted(set(raw) - {"policy", "auto_policy", "acknowledgement"}):
        raise ConfigError(f"incidents.{unknown}", "policy, auto_policy or acknowledgement")
    policy = raw.get("policy", "")
    if not isinstance(policy, str):
        raise ConfigError("incidents.policy", "the name of a [[policies]] entry, or \"\" for none")
    names = [p.name for p in sla.policies]
    if policy and policy not in names:
        raise ConfigError("incidents.policy", f"the name of a [[policies]] entry: one of {names}")
    auto = raw.get("auto_policy", "detector")
    if not isinstance(auto, str) or auto not in AUTO_POLICY:
        raise ConfigError("incidents.auto_policy", 'one of "off", "detector" (incidents the detector opens) or "all" '
                                                   "(those opened by hand too)")
    templates = {net: dict(langs) for net, langs in TEMPLATES.items()}
    table = raw.get("acknowledgement", {})
    if not isinstance(table, Mapping):
        raise ConfigError("incidents.acknowledgement", 'a table of language = "text" and [incidents.acknowledgement.<network>] tables')
    for key, value in table.items():
        if isinstance(value, Mapping):
            for lang, text in value.items():
                templates.setdefault(key, {})[lang] = _template(text, f"incidents.acknowledgement.{key}.{lang}")
        else:
            templates[DEFAULT][key] = _template(value, f"incidents.acknowledgement.{key}")
    return IncidentSettings(policy=policy or None, auto_policy=auto,
                            templates=MappingProxyType({k: MappingProxyType(v) for k, v in templates.items()}))


def _template(value: object, key: str) -> str:
    """One acknowledgement text: non-empty, with no placeholder other than {service}."""
    expected = 'a non-empty text whose only placeholder is {service}, e.g. "We know {service} is down."'
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, expected)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as err:
        raise ConfigError(key, expected + " (write {{ and }} for braces)") from err
    if not fields <= PLACEHOLDERS:
        raise ConfigError(key, expected)
    return value.strip()
