"""The carebox error tree; foreign errors are translated into these at the boundary."""

from __future__ import annotations


class CareboxError(Exception):
    """Base of every error carebox raises on purpose."""


class ConfigError(CareboxError):
    """A configuration value is missing or malformed."""

    def __init__(self, key: str, expected: str, file: str | None = None) -> None:
        self.key = key
        self.expected = expected
        self.file = file
        super().__init__(str(self))

    def with_file(self, file: str) -> ConfigError:
        """Return the same error, naming the file it was read from."""
        return ConfigError(self.key, self.expected, file)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.key}: expected {self.expected}"


class BadPayload(CareboxError):
    """An inbound payload cannot be parsed; it goes to the dead-letter table with this reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ConnectorError(CareboxError):
    """A connector could not talk to its network."""

    def __init__(self, connector: str, detail: str = "") -> None:
        self.connector = connector
        self.detail = detail
        super().__init__(f"{connector}: {detail}" if detail else connector)


class ConnectorUnavailable(ConnectorError):
    """The network cannot be reached or answered with a server error; retry later."""


class AuthenticationFailed(ConnectorError):
    """The network refused the credentials (401/403); retrying will not help."""


class RateLimited(ConnectorError):
    """The network asked us to slow down; retry after `retry_after` seconds."""

    def __init__(self, connector: str, retry_after: float, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(connector, detail or f"rate limited, retry after {retry_after:g}s")


class ReplyRejected(ConnectorError):
    """The network refused a reply for a reason that retrying will not fix (4xx)."""


class NotFound(CareboxError):
    """A requested object does not exist."""


class PermissionDenied(CareboxError):
    """The user may not do this."""
