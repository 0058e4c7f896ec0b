"""Request and response models of the HTTP API (pydantic v2).

Response models are built from the domain records in ``graph.types`` and ``api.index`` by the
``from_*`` constructors here, so routes stay one line and no dict crosses the boundary.
"""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.index import AccountView
from api.service import CheckoutResult
from graph.types import (
    Decision,
    Event,
    EventKind,
    Label,
    LabelEntity,
    NodeType,
    Ring,
    Subgraph,
    SubgraphEdge,
    SubgraphNode,
    Tier,
    Verdict,
)
from ingestion.validate import ID_CONTROL_CHARACTERS, MAX_AMOUNT, MAX_ID_LENGTH, MIN_YEAR

#: An identifier in a request: 1..128 characters, no control characters (the store's limits).
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=rf"^[^{ID_CONTROL_CHARACTERS[1:-1]}]+$")]
#: An IP address as text; the schema says so with the standard formats (checked by ``_ip``).
IpText = Annotated[str, Field(max_length=64, json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})]
#: How far in the future an event's timestamp may be (clock skew between services).
MAX_FUTURE_SECONDS = 86_400.0
_MIN_TS = datetime(MIN_YEAR, 1, 1, tzinfo=UTC)


def node_id(node_type: NodeType, key: str) -> str:
    """How the API names a node: ``"User:u0001"``, ``"Device:d12"``, ``"Ring:ring-ab12"``."""
    return f"{node_type.value}:{key}"


#: How a model scores: trained on fraud labels, or the unsupervised graph anomaly score that
#: ringwatch ships when labels are too few (``gnn.train.TrainConfig.min_fraud_labels``).
Mode = Literal["supervised", "unsupervised"]
_MODE_DOC = (
    "supervised (trained on fraud labels) or unsupervised (graph anomaly score, too few labels), "
    "as recorded in the scoring model's artefact; null until scored or when that artefact is not available"
)


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable: not_found, invalid, store_unavailable, ...")
    message: str
    field: str | None = Field(default=None, description="the request field at fault, if any")


class ErrorResponse(BaseModel):
    """The one error shape of every non-2xx answer."""

    error: ErrorBody


class HealthResponse(BaseModel):
    status: str = Field(description="ok")
    store: str = Field(description="backend name of the graph store, e.g. sqlite or neo4j")
    scored: bool = Field(description="false until `ringwatch score` has written scores")
    model_version: str | None
    model_mode: Mode | None = Field(description=_MODE_DOC)
    artifact_version: str | None = Field(description="first line of models_dir/CURRENT, if any")
    users: int
    transactions: int
    rings: int
    snapshot_taken_at: float = Field(description="UTC epoch seconds of the snapshot served")
    scored_at: float | None = Field(description="UTC epoch seconds of the scoring run served")


class AccountRiskResponse(BaseModel):
    user_id: str
    score: float | None = Field(description="probability of fraud in [0, 1]; null until scored")
    tier: Tier | None
    decision: Decision | None = Field(description="high → block, medium → review, low → allow")
    ring_id: str | None
    model_version: str | None
    mode: Mode | None = Field(description=_MODE_DOC)
    reasons: list[str] = Field(description="at most 4 short facts, most relevant first")
    devices: list[str]
    ips: list[str]

    @classmethod
    def from_view(cls, view: AccountView) -> AccountRiskResponse:
        return cls(
            user_id=view.user_id,
            score=view.score,
            tier=view.tier,
            decision=view.tier.decision if view.tier is not None else None,
            ring_id=view.ring_id,
            model_version=view.model_version,
            mode=view.mode,  # type: ignore[arg-type]  # an artefact's mode is one of gnn.artefact.MODES
            reasons=list(view.reasons),
            devices=list(view.devices),
            ips=list(view.ips),
        )


class BrowserQuery(BaseModel):
    cypher: str = Field(description="parameterised Cypher that opens the same subgraph in Neo4j Browser")
    params: dict[str, str | int | list[str]]
    browser: str = Field(description="the :param lines and the query, ready to paste into Neo4j Browser")


class SubgraphNodeResponse(BaseModel):
    id: str = Field(description='"Type:key", e.g. "User:u0001"')
    type: NodeType
    risk_score: float | None = None
    risk_tier: Tier | None = None
    ring_id: str | None = None

    @classmethod
    def from_node(cls, node: SubgraphNode) -> SubgraphNodeResponse:
        return cls(
            id=node_id(node.node_type, node.key),
            type=node.node_type,
            risk_score=node.risk_score,
            risk_tier=node.risk_tier,
            ring_id=node.ring_id,
        )


class SubgraphEdgeResponse(BaseModel):
    source: str
    target: str
    type: str = Field(description="relationship type, e.g. TRANSACTED, USED_DEVICE")
    txn_id: str | None = None
    risk_score: float | None = None

    @classmethod
    def from_edge(cls, edge: SubgraphEdge) -> SubgraphEdgeResponse:
        return cls(
            source=node_id(*edge.source),
            target=node_id(*edge.target),
            type=edge.edge_type.value,
            txn_id=edge.txn_id,
            risk_score=edge.risk_score,
        )


class SubgraphResponse(BaseModel):
    center: str
    hops: int
    nodes: list[SubgraphNodeResponse]
    edges: list[SubgraphEdgeResponse]
    truncated: bool = Field(description="true when the node or edge cap cut the answer short")
    browser: BrowserQuery | None = Field(default=None, description="the same subgraph in Neo4j Browser")

    @classmethod
    def from_subgraph(cls, sub: Subgraph) -> SubgraphResponse:
        return cls(
            center=node_id(*sub.center),
            hops=sub.hops,
            nodes=[SubgraphNodeResponse.from_node(n) for n in sub.nodes],
            edges=[SubgraphEdgeResponse.from_edge(e) for e in sub.edges],
            truncated=sub.truncated,
        )


class RingResponse(BaseModel):
    ring_id: str
    members: list[str]
    size: int
    shared_devices: list[str]
    shared_ips: list[str]
    shared_merchants: list[str]
    score: float
    tier: Tier

    @classmethod
    def from_ring(cls, ring: Ring) -> RingResponse:
        return cls(
            ring_id=ring.ring_id,
            members=list(ring.members),
            size=ring.size,
            shared_devices=list(ring.shared_devices),
            shared_ips=list(ring.shared_ips),
            shared_merchants=list(ring.shared_merchants),
            score=ring.score,
            tier=ring.tier,
        )


def _check_ts(value: datetime, field: str) -> datetime:
    """UTC (a naive time is read as UTC), not before ``MIN_YEAR``, at most a day ahead."""
    ts = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if ts < _MIN_TS:
        raise ValueError(f"{field} must not be before {_MIN_TS.date().isoformat()}")
    if ts.timestamp() > time.time() + MAX_FUTURE_SECONDS:
        raise ValueError(f"{field} must not be more than a day in the future")
    return ts.astimezone(UTC)


class CheckoutRequest(BaseModel):
    """One checkout event, as the checkout service sends it (DESIGN §5). The user, device, IP
    and merchant may all be new to ringwatch."""

    model_config = ConfigDict(extra="forbid")

    txn_id: Identifier
    ts: datetime = Field(description="ISO-8601; UTC when no zone is given; not before 2000, at most a day ahead")
    user_id: Identifier
    device_id: Identifier | None = None
    ip: IpText | None = Field(default=None, description="IPv4 or IPv6 text")
    merchant_id: Identifier
    amount: float = Field(ge=0.0, le=MAX_AMOUNT, allow_inf_nan=False, strict=True)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = Field(default=None, description="ISO 4217")
    event: Literal["payment", "refund"] = "payment"

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: datetime) -> datetime:
        return _check_ts(value, "ts")

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("ip must be an IPv4 or IPv6 address") from None

    def to_event(self) -> Event:
        return Event(
            txn_id=self.txn_id,
            ts=self.ts.timestamp(),
            user_id=self.user_id,
            device_id=self.device_id,
            ip=self.ip,
            merchant_id=self.merchant_id,
            amount=float(self.amount),
            currency=self.currency,
            event=EventKind(self.event),
        )


class CheckoutResponse(BaseModel):
    txn_id: str
    user_id: str
    score: float = Field(description="the score behind the tier: the riskier of account and payment, in [0, 1]")
    tier: Tier
    decision: Decision = Field(description="high -> block, medium -> review, low -> allow")
    reasons: list[str] = Field(description="at most 4 short facts, most telling first")
    ring_id: str | None = Field(description="the account's ring, or the ring that shares the event's device or IP")
    model_version: str | None
    mode: Mode | None = Field(description=_MODE_DOC)
    account_score: float = Field(description="the account's score with this event counted")
    transaction_score: float = Field(description="this payment's score")
    new_entities: list[str] = Field(description="what ringwatch had never seen: user, device, ip, merchant")
    scoring: Literal["inductive", "identifiers"] = Field(
        description="inductive: GraphSAGE on the neighbourhood the event creates; identifiers: the fallback "
        "when the served model has no network to run (unsupervised or tree scorer)"
    )

    @classmethod
    def from_result(cls, r: CheckoutResult) -> CheckoutResponse:
        return cls(
            txn_id=r.txn_id,
            user_id=r.user_id,
            score=r.score,
            tier=r.tier,
            decision=r.decision,
            reasons=list(r.reasons),
            ring_id=r.ring_id,
            model_version=r.model_version,
            mode=r.mode,  # type: ignore[arg-type]  # an artefact's mode is one of gnn.artefact.MODES
            account_score=r.account_score,
            transaction_score=r.transaction_score,
            new_entities=list(r.new_entities),
            scoring=r.scoring,  # type: ignore[arg-type]  # "inductive" or "identifiers"
        )


class LabelIn(BaseModel):
    """One investigator verdict (DESIGN §5): the latest verdict per entity wins."""

    model_config = ConfigDict(extra="forbid")

    entity: LabelEntity
    entity_id: Identifier
    label: Verdict
    ts: datetime | None = Field(default=None, description="when the verdict was given; default: now")
    source: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = "investigator"

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _check_ts(value, "ts")

    def to_label(self, now: float) -> Label:
        ts = self.ts.timestamp() if self.ts is not None else now
        return Label(entity=self.entity, entity_id=self.entity_id, label=self.label, ts=ts, source=self.source)


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1, max_length=10_000)


class LabelsResponse(BaseModel):
    received: int
    stored: int = Field(description="verdicts the store took (what the next training run reads)")


class StoreHealthResponse(BaseModel):
    reachable: bool | None = Field(description="null until the first check")
    checked_at: float | None
    error: str | None


class ReadinessResponse(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    model_loaded: bool
    model_version: str | None
    mode: Mode | None = Field(description=_MODE_DOC)
    artifact_version: str | None
    inductive: bool = Field(description="unseen events are scored by GraphSAGE on their neighbourhood")
    snapshot_age_seconds: float | None
    store: StoreHealthResponse
    journal_depth: int = Field(description="accepted events not yet in the store")
    journal_error: str | None
    events_since_snapshot: int
    reasons: list[str]


class RingListResponse(BaseModel):
    total: int = Field(description="rings matching the filters, before limit/offset")
    items: list[RingResponse]
