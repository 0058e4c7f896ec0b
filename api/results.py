"""What the risk service answers, as typed records: a checkout event's result, the store's
reachability and the readiness report. The routes turn them into response models (``api.models``);
the service (``api.service``) builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.types import Decision, Tier


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """The answer to one checkout event (see ``RiskService.score``)."""

    txn_id: str
    user_id: str
    score: float
    tier: Tier
    decision: Decision
    account_score: float
    account_tier: Tier
    transaction_score: float
    transaction_tier: Tier
    reasons: tuple[str, ...]
    ring_id: str | None
    new_entities: tuple[str, ...]
    model_version: str | None
    mode: str | None
    scoring: str  # "inductive" (GraphSAGE on the neighbourhood) or "identifiers" (fallback)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The last reachability check of the store (``api.probe.StoreProbe``)."""

    reachable: bool | None  # None: not checked yet
    checked_at: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` reports. ``status``: ready, degraded (serving from memory, the store is
    unreachable or the journal cannot drain) or not_ready (no model view loaded)."""

    status: str
    model_loaded: bool
    model_version: str | None
    mode: str | None
    artifact_version: str | None
    inductive: bool
    snapshot_age_seconds: float | None
    store: StoreHealth
    journal_depth: int
    journal_error: str | None
    events_since_snapshot: int
    reasons: tuple[str, ...]
