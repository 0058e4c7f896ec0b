"""Every Cypher statement of ``Neo4jGraphStore``, as named constants (DESIGN §4).

The one place Cypher lives for the Neo4j store. Values always travel as ``$parameters``; labels,
relationship types and property names come only from the literals in this module, never from
input. Batched writes take ``$rows``: a list of *lists* (not maps), which Bolt packs with fewer
bytes; each statement documents its column order.

Storage model (see ``graph/neo4j_store.py`` for the why):

- ``(:User {user_id})``, ``(:Device {device_id})``, ``(:IP {ip})``, ``(:Merchant {merchant_id})``;
- an event with a merchant: ``(:User)-[:TRANSACTED {txn_id, ts, amount, currency, event, status,
  device_id, ip}]->(:Merchant)``; an event without one (signup, login):
  ``(:User)-[:ACTED {same properties}]->(same :User)``, a self-loop;
- ``(:User)-[:USED_DEVICE|USED_IP {first_seen, last_seen, count}]->(:Device|:IP)`` and
  ``(:Device)-[:SEEN_AT {first_seen, last_seen, count}]->(:IP)``, aggregated at write time;
- ``(:Verdict {vid, entity, entity_id, label, ts, source})``: every verdict ever loaded;
- ``(:Ring {ring_id, risk_score, risk_tier, size, shared_*, model_version, scored_at})`` and
  ``(:User)-[:MEMBER_OF]->(:Ring)`` from the last scoring run;
- ``(:RingwatchMeta {key: 'schema', version})`` and ``(:RingwatchMeta {key: 'scoring', ...})``.
"""

from __future__ import annotations

from typing import LiteralString

from graph.types import EdgeType, NodeType

#: label and key property per node type (the literals every statement below is built from).
NODE_LABELS: dict[NodeType, tuple[LiteralString, LiteralString]] = {
    NodeType.USER: ("User", "user_id"),
    NodeType.DEVICE: ("Device", "device_id"),
    NodeType.IP: ("IP", "ip"),
    NodeType.MERCHANT: ("Merchant", "merchant_id"),
}
#: the two relationship types that carry one event each
EVENT_RELS: tuple[LiteralString, LiteralString] = ("TRANSACTED", "ACTED")

# ============================================================================================
# Schema (idempotent: IF NOT EXISTS)
# ============================================================================================

SCHEMA: tuple[LiteralString, ...] = (
    *(
        f"CREATE CONSTRAINT {label.lower()}_{key}_unique IF NOT EXISTS"
        f" FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
        for label, key in NODE_LABELS.values()
    ),
    "CREATE CONSTRAINT ring_ring_id_unique IF NOT EXISTS FOR (n:Ring) REQUIRE n.ring_id IS UNIQUE",
    "CREATE CONSTRAINT verdict_vid_unique IF NOT EXISTS FOR (n:Verdict) REQUIRE n.vid IS UNIQUE",
    "CREATE CONSTRAINT ringwatchmeta_key_unique IF NOT EXISTS FOR (n:RingwatchMeta) REQUIRE n.key IS UNIQUE",
    # Relationship property uniqueness constraints exist in 5.x community (since 5.7); the
    # loader still filters known ids first, so the constraint only guards concurrent writers.
    *(
        f"CREATE CONSTRAINT {rel.lower()}_txn_id_unique IF NOT EXISTS"
        f" FOR ()-[r:{rel}]-() REQUIRE r.txn_id IS UNIQUE"
        for rel in EVENT_RELS
    ),
    *(
        f"CREATE INDEX {label.lower()}_{prop} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})"
        for label, _key in NODE_LABELS.values()
        for prop in ("risk_tier", "ring_id")
    ),
    *(
        f"CREATE INDEX {rel.lower()}_risk_tier IF NOT EXISTS FOR ()-[r:{rel}]-() ON (r.risk_tier)"
        for rel in EVENT_RELS
    ),
)
AWAIT_INDEXES: LiteralString = "CALL db.awaitIndexes(300)"
SHOW_CONSTRAINTS: LiteralString = "SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties RETURN name, labelsOrTypes, properties"
# The first store to connect records the schema version; later ones read it and compare.
INIT_SCHEMA_VERSION: LiteralString = (
    "MERGE (m:RingwatchMeta {key: 'schema'}) ON CREATE SET m.version = $version RETURN m.version AS version"
)
GET_SCHEMA_VERSION: LiteralString = "MATCH (m:RingwatchMeta {key: 'schema'}) RETURN m.version AS version"

# ============================================================================================
# Events
# ============================================================================================

#: Which of ``$ids`` are stored already, as either kind of event edge. The index hints pin the
#: plan to one unique-index seek per id: a plan cached while the database was nearly empty (after
#: ``delete_all``, or on a first load) can be an index *scan* plus a filter per id, far costlier
#: per event until the planner replans.
EXISTING_TXN_IDS: LiteralString = (
    "UNWIND $ids AS id MATCH ()-[t:TRANSACTED {txn_id: id}]->() USING INDEX t:TRANSACTED(txn_id)"
    " RETURN t.txn_id AS id"
    " UNION ALL"
    " UNWIND $ids AS id MATCH ()-[a:ACTED {txn_id: id}]->() USING INDEX a:ACTED(txn_id)"
    " RETURN a.txn_id AS id"
)
#: The stored events among ``$ids``, with the columns of ``Event`` (the same index hints).
STORED_EVENTS: LiteralString = (
    "UNWIND $ids AS id MATCH (u:User)-[t:TRANSACTED {txn_id: id}]->(m:Merchant) USING INDEX t:TRANSACTED(txn_id)"
    " RETURN t.txn_id AS txn_id, t.ts AS ts, u.user_id AS user_id, t.device_id AS device_id, t.ip AS ip,"
    " m.merchant_id AS merchant_id, t.amount AS amount, t.currency AS currency, t.event AS event, t.status AS status"
    " UNION ALL"
    " UNWIND $ids AS id MATCH (u:User)-[a:ACTED {txn_id: id}]->() USING INDEX a:ACTED(txn_id)"
    " RETURN a.txn_id AS txn_id, a.ts AS ts, u.user_id AS user_id, a.device_id AS device_id, a.ip AS ip,"
    " null AS merchant_id, a.amount AS amount, a.currency AS currency, a.event AS event, a.status AS status"
)
#: Whether any event is stored.
ANY_EVENT: LiteralString = "MATCH ()-[e:TRANSACTED|ACTED]->() RETURN 1 LIMIT 1"
#: Whether the database holds any node but ringwatch's own records (what the offline import
#: would replace).
ANY_DATA: LiteralString = "MATCH (n) WHERE NOT n:RingwatchMeta RETURN labels(n) AS labels LIMIT 1"

# One batch of new events travels as separate, client-side deduplicated lists, so the server
# looks every key up once (matching nodes by key in every clause that reads ``$rows`` costs more
# index seeks than the writes themselves):
#
# - ``$users``, ``$merchants``, ``$devices``, ``$ips``: the distinct keys, sorted (concurrent
#   writers then lock nodes in the same order: no deadlock cycles). Each is merged and collected
#   into a list of nodes in the same order, which the rows below index into.
# - ``$transacted`` / ``$acted``: event rows [txn_id, ts, user index, merchant index (null in
#   ``$acted``), device_id, ip, amount, currency, event, status]. A null in a CREATE map leaves
#   that property unset, which reads back as null.
# - ``$user_device``, ``$user_ip``, ``$device_ip``: one row per distinct pair of the batch,
#   [source index, target index, first ts, last ts, count], merged into the stored link.
_EVENT_PROPS: LiteralString = (
    "{txn_id: r[0], ts: r[1], device_id: r[4], ip: r[5], amount: r[6], currency: r[7], event: r[8], status: r[9]}"
)


def _merge_nodes(label: LiteralString, key: LiteralString, keys: LiteralString) -> LiteralString:
    # UNWIND and MERGE keep the order of ``$keys``, so ``collect`` lines the nodes up with it.
    return f"CALL () {{ UNWIND ${keys} AS k MERGE (n:{label} {{{key}: k}}) RETURN collect(n) AS {keys} }}"


def _merge_link(src: LiteralString, rel: LiteralString, dst: LiteralString, pairs: LiteralString) -> LiteralString:
    # ``src`` / ``dst``: the node lists of _merge_nodes; MERGE (locking) so that concurrent
    # writers never create the same link twice.
    return (
        f"CALL ({src}, {dst}) {{ UNWIND ${pairs} AS p WITH {src}[p[0]] AS x, {dst}[p[1]] AS y, p"
        f" MERGE (x)-[e:{rel}]->(y)"
        " ON CREATE SET e.first_seen = p[2], e.last_seen = p[3], e.count = p[4]"
        " ON MATCH SET e.first_seen = CASE WHEN p[2] < e.first_seen THEN p[2] ELSE e.first_seen END,"
        " e.last_seen = CASE WHEN p[3] > e.last_seen THEN p[3] ELSE e.last_seen END,"
        " e.count = e.count + p[4] }"
    )


#: All of one batch in one statement (events not stored yet, distinct txn ids; parameters as
#: above): nodes by MERGE on the uniqueness constraints, each event as a new TRANSACTED (with
#: merchant) or ACTED (without) edge, then the USED_DEVICE / USED_IP / SEEN_AT aggregates of the
#: batch merged into the stored ones. Returns how many events it wrote.
WRITE_EVENTS: LiteralString = (
    _merge_nodes("User", "user_id", "users")
    + " "
    + _merge_nodes("Merchant", "merchant_id", "merchants")
    + " "
    + _merge_nodes("Device", "device_id", "devices")
    + " "
    + _merge_nodes("IP", "ip", "ips")
    + " CALL (users, merchants) { UNWIND $transacted AS r WITH users[r[2]] AS u, merchants[r[3]] AS m, r"
    f" CREATE (u)-[:TRANSACTED {_EVENT_PROPS}]->(m) }}"
    " CALL (users) { UNWIND $acted AS r WITH users[r[2]] AS u, r"
    f" CREATE (u)-[:ACTED {_EVENT_PROPS}]->(u) }}"
    " "
    + _merge_link("users", "USED_DEVICE", "devices", "user_device")
    + " "
    + _merge_link("users", "USED_IP", "ips", "user_ip")
    + " "
    + _merge_link("devices", "SEEN_AT", "ips", "device_ip")
    + " RETURN size($transacted) + size($acted) AS n"
)

# ============================================================================================
# Verdicts
# ============================================================================================

#: Rows: [vid, entity, entity_id, label, ts, source]; ``vid`` is the verdict's identity, so a
#: verdict loaded twice is one node (counted through ``nodes_created``).
MERGE_VERDICTS: LiteralString = (
    "UNWIND $rows AS r MERGE (v:Verdict {vid: r[0]})"
    " ON CREATE SET v.entity = r[1], v.entity_id = r[2], v.label = r[3], v.ts = r[4], v.source = r[5]"
)

# ============================================================================================
# Scores and rings (one write transaction: clear, set, validate by counts)
# ============================================================================================

CLEAR_NODE_SCORES: dict[NodeType, LiteralString] = {
    t: f"MATCH (n:{label}) WHERE n.risk_tier IS NOT NULL OR n.ring_id IS NOT NULL"
    " REMOVE n.risk_score, n.risk_tier, n.ring_id, n.model_version, n.scored_at"
    " REMOVE n:LowRisk:MediumRisk:HighRisk"
    for t, (label, _key) in NODE_LABELS.items()
}
# Display labels for Neo4j Browser, whose style sheets (GraSS) select by label only
# (neo4j/ringwatch.grass): the tier on scored users, the size class on rings.
_TIER_LABELS = (
    " FOREACH (_ IN CASE WHEN r[2] = 'high' THEN [1] ELSE [] END | SET u:HighRisk)"
    " FOREACH (_ IN CASE WHEN r[2] = 'medium' THEN [1] ELSE [] END | SET u:MediumRisk)"
    " FOREACH (_ IN CASE WHEN r[2] = 'low' THEN [1] ELSE [] END | SET u:LowRisk)"
)
#: Rings of fewer than this many members are ``:SmallRing``, up to ``LARGE_RING`` ``:MidRing``.
MID_RING, LARGE_RING = 5, 15
CLEAR_EVENT_SCORES: tuple[LiteralString, ...] = tuple(
    f"MATCH ()-[t:{rel}]->() WHERE t.risk_tier IS NOT NULL REMOVE t.risk_score, t.risk_tier" for rel in EVENT_RELS
)
DELETE_RINGS: LiteralString = "MATCH (g:Ring) DETACH DELETE g"
#: Rows: [user_id, score, tier]. Returns how many rows matched a user.
SET_USER_SCORES: LiteralString = (
    "UNWIND $rows AS r MATCH (u:User {user_id: r[0]})"
    " SET u.risk_score = r[1], u.risk_tier = r[2], u.model_version = $model_version, u.scored_at = $scored_at"
    + _TIER_LABELS
    + " RETURN count(u) AS n"
)
#: Rows: [txn_id, score, tier], once per edge type (index hint: see EXISTING_TXN_IDS). Returns how
#: many rows matched an event.
SET_EVENT_SCORES: tuple[LiteralString, ...] = tuple(
    f"UNWIND $rows AS r MATCH ()-[t:{rel} {{txn_id: r[0]}}]->() USING INDEX t:{rel}(txn_id)"
    " SET t.risk_score = r[1], t.risk_tier = r[2] RETURN count(t) AS n"
    for rel in EVENT_RELS
)
#: Rows: [user_id, ring_id]. Returns how many rows matched a user.
SET_USER_RINGS: LiteralString = (
    "UNWIND $rows AS r MATCH (u:User {user_id: r[0]}) SET u.ring_id = r[1] RETURN count(u) AS n"
)
#: Rows: [ring_id, score, tier, size, shared_devices, shared_ips, shared_merchants].
CREATE_RINGS: LiteralString = (
    "UNWIND $rows AS r CREATE (g:Ring {ring_id: r[0], risk_score: r[1], risk_tier: r[2],"
    " size: r[3], shared_devices: r[4], shared_ips: r[5], shared_merchants: r[6],"
    " model_version: $model_version, scored_at: $scored_at})"
    f" FOREACH (_ IN CASE WHEN r[3] < {MID_RING} THEN [1] ELSE [] END | SET g:SmallRing)"
    f" FOREACH (_ IN CASE WHEN {MID_RING} <= r[3] < {LARGE_RING} THEN [1] ELSE [] END | SET g:MidRing)"
    f" FOREACH (_ IN CASE WHEN r[3] >= {LARGE_RING} THEN [1] ELSE [] END | SET g:LargeRing)"
)
#: Rows: [ring_id, user_id].
MERGE_MEMBERS: LiteralString = (
    "UNWIND $rows AS r MATCH (g:Ring {ring_id: r[0]}) MATCH (u:User {user_id: r[1]}) MERGE (u)-[:MEMBER_OF]->(g)"
)
SET_SCORING: LiteralString = (
    "MERGE (m:RingwatchMeta {key: 'scoring'}) SET m.model_version = $model_version, m.scored_at = $scored_at"
)
#: Which of ``$keys`` exist, per node type (to name the first missing key of a refused write).
EXISTING_NODES: dict[NodeType, LiteralString] = {
    t: f"MATCH (n:{label}) WHERE n.{key} IN $keys RETURN n.{key} AS k" for t, (label, key) in NODE_LABELS.items()
}
EXISTING_EVENTS: LiteralString = (
    "MATCH ()-[t:TRANSACTED]->() WHERE t.txn_id IN $keys RETURN t.txn_id AS k"
    " UNION MATCH ()-[a:ACTED]->() WHERE a.txn_id IN $keys RETURN a.txn_id AS k"
)

GET_SCORING: LiteralString = (
    "MATCH (m:RingwatchMeta {key: 'scoring'}) RETURN m.model_version AS model_version, m.scored_at AS scored_at"
)
SCORED_USERS: LiteralString = (
    "MATCH (u:User) WHERE u.risk_tier IS NOT NULL RETURN u.user_id AS k, u.risk_score AS s, u.risk_tier AS t"
)
SCORED_EVENTS: LiteralString = (
    "MATCH ()-[e:TRANSACTED]->() WHERE e.risk_tier IS NOT NULL RETURN e.txn_id AS k, e.risk_score AS s, e.risk_tier AS t"
    " UNION ALL"
    " MATCH ()-[e:ACTED]->() WHERE e.risk_tier IS NOT NULL RETURN e.txn_id AS k, e.risk_score AS s, e.risk_tier AS t"
)
RINGS: LiteralString = (
    "MATCH (g:Ring) RETURN g.ring_id AS ring_id, g.risk_score AS score, g.risk_tier AS tier,"
    " g.shared_devices AS devices, g.shared_ips AS ips, g.shared_merchants AS merchants,"
    " [(u:User)-[:MEMBER_OF]->(g) | u.user_id] AS members"
)

# ============================================================================================
# Snapshot: ordered key ranges, ``$page`` rows at a time. ``$from`` is inclusive (the caller
# drops the one row it already has), so the first page is simply ``$from = ''``.
# ============================================================================================

PAGE_USERS: LiteralString = (
    "MATCH (n:User) WHERE n.user_id >= $from WITH n ORDER BY n.user_id LIMIT $page"
    " RETURN n.user_id AS k,"
    " [(n)-[l:USED_DEVICE]->(d:Device) | [d.device_id, l.first_seen, l.last_seen, l.count]] AS devices,"
    " [(n)-[l:USED_IP]->(i:IP) | [i.ip, l.first_seen, l.last_seen, l.count]] AS ips"
)
PAGE_DEVICES: LiteralString = (
    "MATCH (n:Device) WHERE n.device_id >= $from WITH n ORDER BY n.device_id LIMIT $page"
    " RETURN n.device_id AS k,"
    " [(n)-[l:SEEN_AT]->(i:IP) | [i.ip, l.first_seen, l.last_seen, l.count]] AS ips"
)
PAGE_KEYS: dict[NodeType, LiteralString] = {
    t: f"MATCH (n:{label}) WHERE n.{key} >= $from RETURN n.{key} AS k ORDER BY k LIMIT $page"
    for t, (label, key) in NODE_LABELS.items()
}
#: Columns in the order of the event rows above.
PAGE_TRANSACTED: LiteralString = (
    "MATCH ()-[t:TRANSACTED]->() WHERE t.txn_id >= $from WITH t ORDER BY t.txn_id LIMIT $page"
    " MATCH (u:User)-[t]->(m:Merchant)"
    " RETURN t.txn_id, t.ts, u.user_id, m.merchant_id, t.device_id, t.ip, t.amount, t.currency, t.event, t.status"
)
PAGE_ACTED: LiteralString = (
    "MATCH ()-[t:ACTED]->() WHERE t.txn_id >= $from WITH t ORDER BY t.txn_id LIMIT $page"
    " MATCH (u:User)-[t]->()"
    " RETURN t.txn_id, t.ts, u.user_id, null, t.device_id, t.ip, t.amount, t.currency, t.event, t.status"
)
PAGE_VERDICTS: LiteralString = (
    "MATCH (v:Verdict) WHERE v.vid >= $from RETURN v.vid, v.entity, v.entity_id, v.label, v.ts, v.source"
    " ORDER BY v.vid LIMIT $page"
)

# ============================================================================================
# Neighbourhood: one statement per (node type, kind of adjacency) for a whole frontier
# (``$keys``), at most ``$cap`` rows per key, in the same order as the SQLite store.
# ============================================================================================

NODE_EXISTS: dict[NodeType, LiteralString] = {
    t: f"MATCH (n:{label} {{{key}: $key}}) RETURN 1 LIMIT 1" for t, (label, key) in NODE_LABELS.items()
}


def _adjacent(pattern: LiteralString, order: LiteralString, returns: LiteralString) -> LiteralString:
    return (
        "UNWIND $keys AS k CALL (k) {"
        f" MATCH {pattern} RETURN {returns} ORDER BY {order} LIMIT $cap"
        "} RETURN k, o, txn, score"
    )


_ONLY_KEY: LiteralString = "o, null AS txn, null AS score"
#: name -> statement; rows (k, o, txn, score): ``o`` is the key at the other end.
ADJACENT: dict[str, LiteralString] = {
    "user_devices": _adjacent("(:User {user_id: k})-[:USED_DEVICE]->(x:Device)", "o", f"x.device_id AS {_ONLY_KEY}"),
    "user_ips": _adjacent("(:User {user_id: k})-[:USED_IP]->(x:IP)", "o", f"x.ip AS {_ONLY_KEY}"),
    "user_txns": _adjacent(
        "(:User {user_id: k})-[t:TRANSACTED]->(x:Merchant)",
        "o, txn",
        "x.merchant_id AS o, t.txn_id AS txn, t.risk_score AS score",
    ),
    "user_rings": _adjacent("(:User {user_id: k})-[:MEMBER_OF]->(x:Ring)", "o", f"x.ring_id AS {_ONLY_KEY}"),
    "device_users": _adjacent("(x:User)-[:USED_DEVICE]->(:Device {device_id: k})", "o", f"x.user_id AS {_ONLY_KEY}"),
    "device_ips": _adjacent("(:Device {device_id: k})-[:SEEN_AT]->(x:IP)", "o", f"x.ip AS {_ONLY_KEY}"),
    "ip_users": _adjacent("(x:User)-[:USED_IP]->(:IP {ip: k})", "o", f"x.user_id AS {_ONLY_KEY}"),
    "ip_devices": _adjacent("(x:Device)-[:SEEN_AT]->(:IP {ip: k})", "o", f"x.device_id AS {_ONLY_KEY}"),
    "merchant_txns": _adjacent(
        "(x:User)-[t:TRANSACTED]->(:Merchant {merchant_id: k})",
        "o, txn",
        "x.user_id AS o, t.txn_id AS txn, t.risk_score AS score",
    ),
    "ring_users": _adjacent("(x:User)-[:MEMBER_OF]->(:Ring {ring_id: k})", "o", f"x.user_id AS {_ONLY_KEY}"),
}
NODE_PROPS: dict[NodeType, LiteralString] = {
    t: f"UNWIND $keys AS k MATCH (n:{label} {{{key}: k}})"
    " RETURN n." + key + " AS k, n.risk_score AS score, n.risk_tier AS tier, n.ring_id AS ring_id"
    for t, (label, key) in NODE_LABELS.items()
}
RING_PROPS: LiteralString = (
    "UNWIND $keys AS k MATCH (g:Ring {ring_id: k})"
    " RETURN g.ring_id AS k, g.risk_score AS score, g.risk_tier AS tier, g.ring_id AS ring_id"
)

# ============================================================================================
# Stats and maintenance
# ============================================================================================

COUNT_NODES: dict[NodeType, LiteralString] = {
    **{t: f"MATCH (n:{label}) RETURN count(n) AS n" for t, (label, _key) in NODE_LABELS.items()},
    NodeType.RING: "MATCH (n:Ring) RETURN count(n) AS n",
}
# Served from the count store: constant time.
COUNT_EDGES: dict[EdgeType, LiteralString] = {
    EdgeType.TRANSACTED: "MATCH ()-[r:TRANSACTED]->() RETURN count(r) AS n",
    EdgeType.USED_DEVICE: "MATCH ()-[r:USED_DEVICE]->() RETURN count(r) AS n",
    EdgeType.USED_IP: "MATCH ()-[r:USED_IP]->() RETURN count(r) AS n",
    EdgeType.SEEN_AT: "MATCH ()-[r:SEEN_AT]->() RETURN count(r) AS n",
    EdgeType.MEMBER_OF: "MATCH ()-[r:MEMBER_OF]->() RETURN count(r) AS n",
}
#: Auto-commit only (``IN TRANSACTIONS``): relationships first, then every node but the schema
#: record, so no inner transaction has to detach a hub's thousands of edges at once.
DELETE_ALL: tuple[LiteralString, ...] = (
    "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 20000 ROWS",
    "MATCH (n) WHERE NOT (n:RingwatchMeta AND n.key = 'schema')"
    " CALL (n) { DELETE n } IN TRANSACTIONS OF 20000 ROWS",
)
