"""carebox: a social-media customer-care inbox and SLA monitor."""

__version__ = "0.1.0"
