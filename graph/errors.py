"""The one root exception of ringwatch and its domain subclasses.

Whether an error is worth retrying is a property of its type (``retryable``). HTTP status codes
are chosen in ``api/`` only.
"""

from __future__ import annotations


class RingwatchError(Exception):
    """Root of every error ringwatch raises on purpose."""

    retryable: bool = False


class ValidationError(RingwatchError):
    """Input that breaks the event, label or mapping schema; names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class NotFoundError(RingwatchError):
    """An entity (account, ring, artefact) that does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(RingwatchError):
    """An id already used by something with other content (a ``txn_id`` reused for another event)."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class StoreError(RingwatchError):
    """A graph store failed to read or write."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached now; the same call may succeed later."""

    retryable = True


class ModelError(RingwatchError):
    """Training, loading or applying a model failed (missing artefact, incompatible features)."""


class ConfigError(RingwatchError):
    """Settings that are missing, contradictory or unsafe."""
