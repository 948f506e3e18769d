"""Notifiers: where ops and managers are told about incidents and SLA escalations."""
