"""The words of the reasons ringwatch gives for a score: one function per kind of fact.

Three places state facts about an account or an event, and all take their sentences from here:
the API's scoring index (``api.index``: an account's verdict, ring, shared devices and IPs,
activity), the checkout path (``api.service``: an event's device and IP, its ring, what is new)
and the explainer (``gnn.serving.explain``: a device or IP shared with risky accounts). The
checkout and the explainer word a shared device or IP the same way (``identifier_shared``). The
explainer's sentences about model features are ``gnn.serving.explain.TEMPLATES``, next to the
feature columns they read.
"""

from __future__ import annotations

from collections.abc import Iterable

from graph.types import NodeType, Ring

#: Shown first for every account while the store holds no scores.
NOT_SCORED = "not scored yet — run `ringwatch score`"

#: How a sentence names what an event brought that ringwatch had never seen.
_NEW = {"user": "account", "device": "device", "ip": "IP", "merchant": "merchant"}


def plural(n: int) -> str:
    """``"s"`` unless ``n`` is 1."""
    return "" if n == 1 else "s"


def noun(node_type: NodeType) -> str:
    """How a sentence names a shared identifier: ``"device"`` or ``"IP"``."""
    return "device" if node_type is NodeType.DEVICE else "IP"


def verdict(is_fraud: bool, source: str) -> str:
    """The account's winning verdict and where it came from."""
    return f"confirmed fraud ({source})" if is_fraud else f"cleared as legit ({source})"


def ring_member(ring: Ring) -> str:
    """The account is a member of ``ring``."""
    return f"member of ring {_ring(ring)}"


def ring_linked(ring: Ring) -> str:
    """An event is tied to ``ring``: its account is a member, or it shares the ring's device or IP."""
    return f"linked to ring {_ring(ring)}"


def account_shares(node_type: NodeType, key: str, others: int, *, high: int, fraud: int) -> str:
    """The account shares a device or IP with ``others`` accounts, ``high`` of them in the high
    tier and ``fraud`` confirmed fraud (the two may overlap)."""
    risky = []
    if high > 0:
        risky.append(f"{high} of them high risk")
    if fraud > 0:
        risky.append(f"{fraud} confirmed fraud")
    return f"shares {noun(node_type)} {key} with {_others(others)}" + (", " + ", ".join(risky) if risky else "")


def identifier_shared(node_type: NodeType, key: str, others: int, *, fraud: int, high: int) -> str:
    """A device or IP is shared with ``others`` accounts: ``fraud`` confirmed fraud and ``high``
    more in the high tier without a fraud verdict (a checkout event's device or IP, or the
    explainer's risky-neighbour fact)."""
    risky = []
    if fraud:
        risky.append(f"{fraud} confirmed fraud")
    if high:
        risky.append(f"{high} {'more ' if fraud else ''}high risk")
    return f"{noun(node_type)} {key} is shared with {_others(others)}" + (f": {', '.join(risky)}" if risky else "")


def busiest_hour(payments: int) -> str:
    """The most payments the account made in one clock hour."""
    return f"{payments} payments in the busiest hour"


def active_for(days: float) -> str:
    """How long the account has been active, from its first to its last event."""
    if days < 1:
        return "account active for less than a day"
    return f"account active for {int(days)} day{plural(int(days))}"


def first_seen(new: Iterable[str]) -> str:
    """What a checkout event brought that ringwatch had never seen (``user``, ``device``, ``ip``,
    ``merchant``)."""
    return "first time seen: " + ", ".join(_NEW.get(n, n) for n in new)


def rescored(known_before: bool) -> str:
    """The account was scored on its events since the snapshot (``known_before``: the snapshot
    held it; otherwise it is new since)."""
    return f"scored on its latest events (after the {'snapshot' if known_before else 'account first appeared'})"


def ring_alert(ring: Ring) -> str:
    """Why a new high-tier ring raised an alert."""
    return f"{ring.size} accounts sharing {len(ring.shared_devices)} devices and {len(ring.shared_ips)} IPs"


def _ring(ring: Ring) -> str:
    return f"{ring.ring_id} ({ring.size} accounts, {ring.tier.value} tier)"


def _others(n: int) -> str:
    return f"{n} other account{plural(n)}"
