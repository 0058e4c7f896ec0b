"""Domain names and typed records shared by every ringwatch package.

Node types, edge types, tiers and decisions are named here once (DESIGN §4, §6). Every other
package imports them from ``graph``; ``graph`` imports nothing from the other packages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class NodeType(str, enum.Enum):
    """Node labels of the graph model, with the property that keys each one."""

    USER = "User"
    DEVICE = "Device"
    IP = "IP"
    MERCHANT = "Merchant"
    RING = "Ring"

    @property
    def key(self) -> str:
        return _NODE_KEYS[self]


_NODE_KEYS = {
    NodeType.USER: "user_id",
    NodeType.DEVICE: "device_id",
    NodeType.IP: "ip",
    NodeType.MERCHANT: "merchant_id",
    NodeType.RING: "ring_id",
}


class EdgeType(str, enum.Enum):
    """Relationship types of the graph model."""

    TRANSACTED = "TRANSACTED"  # User -> Merchant, one per transaction
    USED_DEVICE = "USED_DEVICE"  # User -> Device
    USED_IP = "USED_IP"  # User -> IP
    SEEN_AT = "SEEN_AT"  # Device -> IP
    MEMBER_OF = "MEMBER_OF"  # User -> Ring


class EventKind(str, enum.Enum):
    PAYMENT = "payment"
    REFUND = "refund"
    SIGNUP = "signup"
    LOGIN = "login"

    @property
    def needs_merchant(self) -> bool:
        """Payments and refunds must name a merchant and an amount (DESIGN §5)."""
        return self in (EventKind.PAYMENT, EventKind.REFUND)


EVENT_KINDS: tuple[str, ...] = tuple(k.value for k in EventKind)


class Tier(str, enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def decision(self) -> Decision:
        return {Tier.LOW: Decision.ALLOW, Tier.MEDIUM: Decision.REVIEW, Tier.HIGH: Decision.BLOCK}[self]

    @property
    def rank(self) -> int:
        return {Tier.LOW: 0, Tier.MEDIUM: 1, Tier.HIGH: 2}[self]


class Decision(str, enum.Enum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class LabelEntity(str, enum.Enum):
    USER = "user"
    TRANSACTION = "transaction"


class Verdict(str, enum.Enum):
    FRAUD = "fraud"
    LEGIT = "legit"


# --------------------------------------------------------------------------------------------
# Input records (validated by ingestion, written by GraphStore.upsert_*)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One validated transaction-schema event (DESIGN §5). ``ts`` is UTC epoch seconds."""

    txn_id: str
    ts: float
    user_id: str
    device_id: str | None = None
    ip: str | None = None
    merchant_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    event: EventKind = EventKind.PAYMENT
    status: str | None = None

    def differences(self, other: Event, other_name: str = "other", at_most: int = 4) -> str:
        """``field=mine (<other_name> theirs)`` for the first ``at_most`` fields but ``txn_id``
        where ``other`` differs, and how many more."""
        out = []
        for name in ("ts", "user_id", "device_id", "ip", "merchant_id", "amount", "currency", "event", "status"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                a, b = (x.value if isinstance(x, EventKind) else x for x in (a, b))
                out.append(f"{name}={a!r} ({other_name} {b!r})")
        more = f" and {len(out) - at_most} more" if len(out) > at_most else ""
        return ", ".join(out[:at_most]) + more


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Validated events as typed columns, all of length ``n``: the bulk form of ``Event``.

    Ingestion hands batches to ``GraphStore.upsert_batch``, so a store that can bind columns
    (the SQLite store) never builds one Python object per event. Text columns are object arrays
    of ``str`` with None where absent; ``amount`` is NaN where absent; ``event`` indexes
    ``EVENT_KINDS``. ``events()`` gives the same events as ``Event`` objects."""

    txn_id: np.ndarray  # object[str] [n]
    ts: np.ndarray  # float64 [n], UTC epoch seconds
    user_id: np.ndarray  # object[str] [n]
    device_id: np.ndarray  # object[str|None] [n]
    ip: np.ndarray  # object[str|None] [n]
    merchant_id: np.ndarray  # object[str|None] [n]
    amount: np.ndarray  # float64 [n], NaN when absent
    currency: np.ndarray  # object[str|None] [n]
    event: np.ndarray  # int8 [n], index into EVENT_KINDS
    status: np.ndarray  # object[str|None] [n]

    def __len__(self) -> int:
        return int(self.txn_id.shape[0])

    def events(self) -> list[Event]:
        """The batch as ``Event`` objects (for stores without a columnar write)."""
        amounts = self.amount.astype(object)
        amounts[np.isnan(self.amount)] = None
        kinds = np.array(list(EventKind), dtype=object)[self.event.astype(np.intp)]
        return list(
            map(
                Event,
                self.txn_id.tolist(),
                self.ts.tolist(),
                self.user_id.tolist(),
                self.device_id.tolist(),
                self.ip.tolist(),
                self.merchant_id.tolist(),
                amounts.tolist(),
                self.currency.tolist(),
                kinds.tolist(),
                self.status.tolist(),
            )
        )

    @classmethod
    def concat(cls, parts: list[EventBatch]) -> EventBatch:
        """One batch holding ``parts`` in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.__slots__))

    def take(self, rows: np.ndarray) -> EventBatch:
        """The rows at positions ``rows`` (an int array or a boolean mask), in that order."""
        return EventBatch(*(getattr(self, name)[rows] for name in self.__slots__))

    def slice(self, start: int, stop: int) -> EventBatch:
        """Rows ``start:stop`` (views, no copy)."""
        return EventBatch(*(getattr(self, name)[start:stop] for name in self.__slots__))


@dataclass(frozen=True, slots=True)
class Label:
    """One verdict. For an entity the verdict with the latest ``ts`` wins."""

    entity: LabelEntity
    entity_id: str
    label: Verdict
    ts: float
    source: str = "unknown"


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What a store did with a batch: new rows written and rows already present (no-ops)."""

    inserted: int
    duplicates: int


# --------------------------------------------------------------------------------------------
# Snapshot: the graph as typed arrays, identical for every store
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class TransactionTable:
    """One row per TRANSACTED edge (and per non-payment event). Index arrays point into
    ``Snapshot.nodes``; ``-1`` means absent. Rows are sorted by (ts, txn_id)."""

    txn_id: np.ndarray  # object[str], shape [T]
    ts: np.ndarray  # float64 [T], UTC epoch seconds
    user: np.ndarray  # int64 [T]
    merchant: np.ndarray  # int64 [T], -1 for signup/login
    device: np.ndarray  # int64 [T], -1 when absent
    ip: np.ndarray  # int64 [T], -1 when absent
    amount: np.ndarray  # float64 [T], NaN when absent
    currency: np.ndarray  # object[str|None] [T]
    event: np.ndarray  # int8 [T], index into EVENT_KINDS
    status: np.ndarray  # object[str|None] [T]

    def __len__(self) -> int:
        return int(self.txn_id.shape[0])


@dataclass(slots=True)
class LinkTable:
    """Aggregated links such as USED_DEVICE: one row per distinct (src, dst) pair, sorted."""

    src: np.ndarray  # int64 [E]
    dst: np.ndarray  # int64 [E]
    first_seen: np.ndarray  # float64 [E]
    last_seen: np.ndarray  # float64 [E]
    count: np.ndarray  # int64 [E]

    def __len__(self) -> int:
        return int(self.src.shape[0])


@dataclass(slots=True)
class LabelTable:
    """The winning (latest) verdict per labelled entity. ``index`` points into the entity's
    node list (users) or into ``TransactionTable`` rows (transactions)."""

    index: np.ndarray  # int64 [L]
    is_fraud: np.ndarray  # bool [L]
    ts: np.ndarray  # float64 [L]
    source: np.ndarray  # object[str] [L]

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass(slots=True)
class Snapshot:
    """The whole graph as typed arrays.

    ``nodes[t]`` is a sorted object array of keys for node type ``t`` (User, Device, IP, Merchant);
    every index array refers to positions in these lists. Two stores holding the same events and
    labels produce equal snapshots (see ``Snapshot.equals``).
    """

    nodes: dict[NodeType, np.ndarray]
    transactions: TransactionTable
    user_device: LinkTable
    user_ip: LinkTable
    device_ip: LinkTable
    user_labels: LabelTable
    txn_labels: LabelTable
    taken_at: float = 0.0

    def num_nodes(self, node_type: NodeType) -> int:
        return int(self.nodes[node_type].shape[0])

    def index_of(self, node_type: NodeType) -> dict[str, int]:
        """Key -> position for one node type (built on demand; O(n))."""
        return {k: i for i, k in enumerate(self.nodes[node_type].tolist())}

    def equals(self, other: Snapshot) -> bool:
        """True when both snapshots describe the same graph and labels (``taken_at`` ignored)."""
        for t in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT):
            if self.nodes[t].tolist() != other.nodes[t].tolist():
                return False
        pairs = [
            (self.transactions, other.transactions),
            (self.user_device, other.user_device),
            (self.user_ip, other.user_ip),
            (self.device_ip, other.device_ip),
            (self.user_labels, other.user_labels),
            (self.txn_labels, other.txn_labels),
        ]
        for a, b in pairs:
            for name in a.__slots__:
                x, y = getattr(a, name), getattr(b, name)
                if x.dtype.kind == "f":
                    if not np.array_equal(x, y, equal_nan=True):
                        return False
                elif x.tolist() != y.tolist():
                    return False
        return True


# --------------------------------------------------------------------------------------------
# Scores and rings written back to the store
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityScore:
    """A score and tier for one account (``key`` = user_id) or transaction (``key`` = txn_id)."""

    key: str
    score: float
    tier: Tier


@dataclass(frozen=True, slots=True)
class Ring:
    """A group of accounts tied by shared identifiers and risky together (DESIGN §6)."""

    ring_id: str
    members: tuple[str, ...]  # user ids, sorted
    shared_devices: tuple[str, ...]
    shared_ips: tuple[str, ...]
    shared_merchants: tuple[str, ...]
    score: float
    tier: Tier

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True, slots=True)
class ScoreWriteback:
    """Everything one scoring run writes back. A write replaces all earlier scores and rings."""

    model_version: str
    scored_at: float
    accounts: tuple[EntityScore, ...]
    transactions: tuple[EntityScore, ...]
    rings: tuple[Ring, ...]


# --------------------------------------------------------------------------------------------
# Reads for the API and investigators
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubgraphNode:
    node_type: NodeType
    key: str
    risk_score: float | None = None
    risk_tier: Tier | None = None
    ring_id: str | None = None


@dataclass(frozen=True, slots=True)
class SubgraphEdge:
    edge_type: EdgeType
    source: tuple[NodeType, str]
    target: tuple[NodeType, str]
    txn_id: str | None = None
    risk_score: float | None = None


@dataclass(frozen=True, slots=True)
class Subgraph:
    center: tuple[NodeType, str]
    hops: int
    nodes: tuple[SubgraphNode, ...]
    edges: tuple[SubgraphEdge, ...]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class StoreStats:
    nodes: dict[str, int] = field(default_factory=dict)  # label -> count
    edges: dict[str, int] = field(default_factory=dict)  # relationship type -> count
    labels: dict[str, int] = field(default_factory=dict)  # "user:fraud" -> count
    rings: int = 0
