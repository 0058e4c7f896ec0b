"""Request and response models of the HTTP API (pydantic v2).

Response models are built from the domain records in ``graph.types``, ``api.index`` and
``api.results`` by the ``from_*`` constructors here, so routes stay one line and no dict crosses
the boundary.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.index import AccountView
from api.results import CheckoutResult
from gnn.artefact.model_artefact import Mode
from graph.types import (
    Decision,
    Event,
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
from ingestion.validate import (
    MAX_AMOUNT,
    MAX_FUTURE_SECONDS,
    MAX_ID_LENGTH,
    MAX_YEAR,
    MIN_YEAR,
    RowRejected,
    validate_event,
    validate_label,
)

# Requests carry JSON types only; their values are checked by ``ingestion.validate``, the
# validation files go through, so both accept and refuse the same values with the same words.
# The descriptions state the limits. The schema does not: that validation strips text and reads
# any letter case, which JSON Schema patterns cannot say exactly.

#: An identifier (text is stripped; an empty one is missing).
Identifier = Annotated[
    str, Field(description=f"1..{MAX_ID_LENGTH} characters, no control characters (newline, tab, NUL ...)")
]
#: A timestamp as ISO-8601 text.
Timestamp = Annotated[
    str, Field(description=f"ISO-8601; UTC when no zone is given; years {MIN_YEAR}..{MAX_YEAR}, at most a day ahead")
]


def node_id(node_type: NodeType, key: str) -> str:
    """How the API names a node: ``"User:u0001"``, ``"Device:d12"``, ``"Ring:ring-ab12"``."""
    return f"{node_type.value}:{key}"


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


class CheckoutRequest(BaseModel):
    """One checkout event, as the checkout service sends it (DESIGN §5). The user, device, IP
    and merchant may all be new to ringwatch."""

    model_config = ConfigDict(extra="forbid")

    txn_id: Identifier
    ts: Timestamp
    user_id: Identifier
    device_id: Identifier | None = None
    ip: str | None = Field(default=None, description="IPv4 or IPv6 text")
    merchant_id: Identifier | None = Field(default=None, description="required for payment and refund")
    amount: float | None = Field(default=None, strict=True,
                                 description=f"0..{MAX_AMOUNT:,.0f}; required for payment and refund")  # fmt: skip
    currency: str | None = Field(default=None, description="ISO 4217: three letters, any case")
    event: Literal["payment", "refund"] = "payment"

    def to_event(self, now: float) -> Event:
        """The checked event; ``now`` is the clock that ``ts`` may run ahead of by a day.

        Raises:
            RowRejected: a value a file's row would be quarantined for, named as there.
        """
        return validate_event(self.model_dump(), not_after=now + MAX_FUTURE_SECONDS)


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

    entity: str = Field(description=" or ".join(e.value for e in LabelEntity) + ", any case")
    entity_id: Identifier
    label: str = Field(description=" or ".join(v.value for v in Verdict) + ", any case")
    ts: Timestamp | None = Field(default=None, description="when the verdict was given; default: now")
    source: Identifier = "investigator"


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1, max_length=10_000)

    def to_labels(self, now: float) -> list[Label]:
        """The checked verdicts; one without ``ts`` is dated ``now``.

        Raises:
            RowRejected: the first item a labels file would quarantine, with its index.
        """
        labels = []
        now_text = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i, item in enumerate(self.labels):
            values = item.model_dump()
            try:
                label = validate_label({**values, "ts": values["ts"] or now_text},
                                       not_after=now + MAX_FUTURE_SECONDS)  # fmt: skip
            except RowRejected as e:
                raise RowRejected(e.code, e.field, f"labels[{i}].{e.reason}") from None
            labels.append(label if item.ts is not None else dataclasses.replace(label, ts=now))
        return labels


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
