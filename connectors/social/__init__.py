"""Social network connectors: one module per network, pure parse_* functions plus a connector class."""
