"""The SLA engine: policies and the two clocks (business deadline, customer's wall clock), in one import.

The rules live in sla_policy (what is promised to whom), sla_clock (how a promise runs), sla_config
(parsing) and sla_explain ("why this deadline"); this module gathers their public names.
"""

from __future__ import annotations

from carebox.sla_clock import (
    Clock,
    ClockState,
    ClockStatus,
    Message,
    Pause,
    escalations,
    evaluate,
    evaluate_all,
    fulfil,
    pause,
    rebase,
    response_clocks,
    resume,
    running_stretches,
    start_clock,
    time_counted,
)
from carebox.sla_config import parse_settings
from carebox.sla_policy import (
    DEFAULT_LADDER,
    FALLBACK_POLICY,
    ConversationFacts,
    EscalationStep,
    Policy,
    ReplyKind,
    ResponseRule,
    SlaSettings,
    Target,
    TargetKind,
    Trigger,
    counts_as_response,
    match_reasons,
)

__all__ = [
    "DEFAULT_LADDER", "FALLBACK_POLICY", "Clock", "ClockState", "ClockStatus", "ConversationFacts", "EscalationStep",
    "Message", "Pause", "Policy", "ReplyKind", "ResponseRule", "SlaSettings", "Target", "TargetKind", "Trigger",
    "counts_as_response", "escalations", "evaluate", "evaluate_all", "fulfil", "match_reasons", "parse_settings",
    "pause", "rebase", "response_clocks", "resume", "running_stretches", "start_clock", "time_counted",
]
