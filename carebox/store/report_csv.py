"""The CSV export's shape: one row per conversation with every clock value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CSV_COLUMNS = (
    "conversation_id", "network", "account", "agent", "priority", "category", "language", "customer_id", "status",
    "policy", "calendar", "first_message_at", "first_response_at", "resolved_at", "business_due", "wall_due",
    "frt_business_s", "frt_wall_s", "sla", "within_expectation", "off_hours_arrival", "incident_id",
    "sentiment_open", "sentiment_last", "resolution_wall_s", "resolution_business_s", "next_responses",
    "nrt_wall_max_s", "nrt_business_max_s",
)


def csv_row(m: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row (CSV_COLUMNS) from a joined report row."""
    contract = m["met"] or m["breached"] or m["policy"] is not None
    sla = "met" if m["met"] else "breached" if m["breached"] else "running" if contract and m["answered"] == 0 else ""
    return {
        "conversation_id": m["id"], "network": m["network"], "account": m["d_account"], "agent": m["d_agent"],
        "priority": m["d_priority"], "category": m["d_category"], "language": m["d_language"],
        "customer_id": m["customer_id"], "status": m["status"], "policy": m["policy"], "calendar": m["calendar"],
        "first_message_at": m["first_message_at"], "first_response_at": m["fulfilled_at"],
        "resolved_at": m["resolved_at"], "business_due": m["business_due"], "wall_due": m["wall_due"],
        "frt_business_s": m["business_s"], "frt_wall_s": m["wall_s"], "sla": sla,
        "within_expectation": "" if not m["decided"] else bool(m["within"]), "off_hours_arrival": bool(m["off"]),
        "incident_id": m["incident_id"], "sentiment_open": m["sentiment_open"], "sentiment_last": m["sentiment_last"],
        "resolution_wall_s": m["resolution_s"], "resolution_business_s": m["res_business_s"],
        "next_responses": m["next_responses"] or 0, "nrt_wall_max_s": m["nrt_wall_max_s"],
        "nrt_business_max_s": m["nrt_business_max_s"],
    }
