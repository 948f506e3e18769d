"""The web inbox and JSON API (aiohttp + Jinja2)."""
