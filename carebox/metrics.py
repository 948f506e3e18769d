"""Prometheus metrics carebox exports on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MENTIONS_INGESTED = Counter("carebox_mentions_ingested", "Mentions stored by the pipeline")
DEAD_LETTERS = Counter("carebox_dead_letters", "Payloads stored as dead letters")
REPLIES_SENT = Counter("carebox_replies_sent", "Replies published through a connector")
REPLY_FAILURES = Counter("carebox_reply_failures", "Replies a connector failed to publish")
QUEUE_DEPTH = Gauge("carebox_queue_batches", "Batches waiting in the embedded queue")
CONNECTOR_UP = Gauge("carebox_connector_up", "1 when the connector's last exchange with its network succeeded",
                     ["connector"])
