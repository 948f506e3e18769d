"""Adapters to the outside world: social networks (inbound and replies) and notifiers."""
