"""Request and response models of the HTTP API (pydantic v2).

Response models are built from the domain records in ``graph.types`` and ``api.index`` by the
``from_*`` constructors here, so routes stay one line and no dict crosses the boundary.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.index import AccountView
from graph.types import Decision, NodeType, Ring, Subgraph, SubgraphEdge, SubgraphNode, Tier


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


class RingListResponse(BaseModel):
    total: int = Field(description="rings matching the filters, before limit/offset")
    items: list[RingResponse]
