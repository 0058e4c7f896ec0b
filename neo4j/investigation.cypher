// ringwatch investigation queries for Neo4j Browser (and for graph/investigation.py).
//
// Each query is a block of three header lines followed by its Cypher:
//   // name: <snake_case name>      unique; how the Python loader and the docs refer to it
//   // purpose: <one line>          what an investigator gets from it
//   // params: $a, $b               every $parameter the Cypher uses ("none" when there are none)
// Values only ever come in as $parameters. In Browser set them first, e.g.
//   :param ring_id => 'ring-5a06e509c0'
//   :param limit => 10
// then paste the query. Queries return paths (drawn as a graph) next to plain columns (Table view).
// Timestamps (ts, first_seen, last_seen, scored_at, $since) are UTC epoch seconds.
// Graph model: README "Graph model" / DESIGN §4.

// name: top_rings
// purpose: Rings from the last scoring run, highest score first, each drawn with its members.
// params: $limit
MATCH (r:Ring)
WITH r ORDER BY r.risk_score DESC, r.ring_id LIMIT $limit
MATCH p = (u:User)-[:MEMBER_OF]->(r)
WITH r, collect(p) AS members, avg(u.risk_score) AS mean_member_score,
     sum(CASE WHEN u.risk_tier = 'high' THEN 1 ELSE 0 END) AS high_members
RETURN r.ring_id AS ring_id, r.risk_score AS score, r.risk_tier AS tier, size(members) AS size,
       high_members, mean_member_score, members
ORDER BY score DESC, ring_id;

// name: expand_ring
// purpose: One ring with its members and the devices and IPs that two or more of them share.
// params: $ring_id
MATCH (r:Ring {ring_id: $ring_id})<-[:MEMBER_OF]-(m:User)
WITH r, collect(m) AS members
UNWIND members AS m
OPTIONAL MATCH link = (m)-[:USED_DEVICE|USED_IP]->(x)
WITH r, members, x, collect(link) AS links
WITH r, members,
     collect(CASE WHEN size(links) >= 2 THEN {node: x, links: links} END) AS shared
MATCH membership = (:User)-[:MEMBER_OF]->(r)
WITH r, shared, collect(membership) AS membership
RETURN r.ring_id AS ring_id, r.risk_score AS score, r.risk_tier AS tier, size(membership) AS size,
       [s IN shared WHERE 'Device' IN labels(s.node) | s.node.device_id] AS shared_devices,
       [s IN shared WHERE 'IP' IN labels(s.node) | s.node.ip] AS shared_ips,
       membership, [s IN shared | s.links] AS shared_links;

// name: shared_identifiers
// purpose: Accounts that share a device or an IP with one account, most shared identifiers first.
// params: $user_id, $limit
MATCH p = (a:User {user_id: $user_id})-[:USED_DEVICE|USED_IP]->(x)<-[:USED_DEVICE|USED_IP]-(b:User)
WHERE b <> a
WITH b, collect(p) AS paths, collect(DISTINCT coalesce(x.device_id, x.ip)) AS shared,
     max(COUNT { (x)<-[:USED_DEVICE|USED_IP]-(:User) }) AS widest_identifier_users
RETURN b.user_id AS user_id, b.risk_score AS risk_score, b.risk_tier AS risk_tier,
       b.ring_id AS ring_id, shared, widest_identifier_users, paths
ORDER BY size(shared) DESC, risk_score DESC, user_id
LIMIT $limit;

// name: shortest_path
// purpose: Shortest chain of shared devices and IPs linking two accounts (no merchants, no Device-IP hops).
// params: $from_user, $to_user
MATCH (a:User {user_id: $from_user}), (b:User {user_id: $to_user})
MATCH p = shortestPath((a)-[:USED_DEVICE|USED_IP*..12]-(b))
RETURN length(p) / 2 AS account_hops,
       [n IN nodes(p) | coalesce(n.user_id, n.device_id, n.ip)] AS via, p;

// name: new_accounts_near_ring
// purpose: Accounts outside a ring, first seen after $since, using a device or IP of its members.
// params: $ring_id, $since
MATCH (r:Ring {ring_id: $ring_id})<-[:MEMBER_OF]-(m:User)-[:USED_DEVICE|USED_IP]->(x)
WITH r, collect(DISTINCT x) AS ring_identifiers
UNWIND ring_identifiers AS x
MATCH (n:User)-[:USED_DEVICE|USED_IP]->(x)
WHERE NOT (n)-[:MEMBER_OF]->(r)
WITH r, n, collect(x) AS via
MATCH (n)-[l:USED_DEVICE|USED_IP]->()
WITH r, n, via, min(l.first_seen) AS first_seen
WHERE first_seen >= $since
MATCH p = (r)<-[:MEMBER_OF]-(:User)-[:USED_DEVICE|USED_IP]->(x)<-[:USED_DEVICE|USED_IP]-(n)
WHERE x IN via
WITH n, first_seen, via, collect(p) AS paths
RETURN n.user_id AS user_id, first_seen, n.risk_score AS risk_score, n.risk_tier AS risk_tier,
       n.ring_id AS ring_id, [x IN via | coalesce(x.device_id, x.ip)] AS via_identifiers, paths
ORDER BY size(via) DESC, first_seen, user_id;

// name: ring_transactions_at_merchant
// purpose: Every transaction the members of a ring made at one merchant, oldest first.
// params: $ring_id, $merchant_id
MATCH p = (r:Ring {ring_id: $ring_id})<-[:MEMBER_OF]-(u:User)-[t:TRANSACTED]->(:Merchant {merchant_id: $merchant_id})
RETURN u.user_id AS user_id, t.txn_id AS txn_id, t.ts AS ts, t.event AS event, t.amount AS amount,
       t.currency AS currency, t.status AS status, t.device_id AS device_id, t.ip AS ip,
       t.risk_score AS risk_score, t.risk_tier AS risk_tier, p
ORDER BY ts, txn_id;

// name: account_subgraph
// purpose: One account's neighbourhood within $hops hops (1 to 3), leaving out accounts whose tier is not in $tiers (what the API's subgraph draws).
// params: $user_id, $hops, $tiers, $limit
MATCH p = (a:User {user_id: $user_id})-[*1..3]-(n)
WHERE length(p) <= $hops
  AND all(x IN nodes(p) WHERE NOT x:User OR x = a OR coalesce(x.risk_tier, 'low') IN $tiers)
RETURN p
LIMIT $limit;

// name: gds_rings
// purpose: GDS WCC over accounts linked by shared devices and IPs (identifiers of more than $max_identifier_users accounts left out, as ring detection does), written back as `community` on accounts, devices and IPs.
// params: $graph_name, $max_identifier_users
MATCH (u:User)
OPTIONAL MATCH (u)-[:USED_DEVICE|USED_IP]->(x)
  WHERE COUNT { (x)<-[:USED_DEVICE|USED_IP]-(:User) } <= $max_identifier_users
WITH gds.graph.project($graph_name, u, x,
       {sourceNodeLabels: 'User', targetNodeLabels: CASE WHEN x:Device THEN 'Device' ELSE 'IP' END},
       {undirectedRelationshipTypes: ['*']}) AS g
CALL gds.wcc.write(g.graphName, {writeProperty: 'community'})
YIELD componentCount, nodePropertiesWritten, componentDistribution
RETURN g.graphName AS graph_name, g.nodeCount AS nodes, g.relationshipCount AS relationships,
       componentCount AS components, nodePropertiesWritten AS written,
       componentDistribution.max AS largest_component;

// name: gds_communities
// purpose: The GDS communities (from gds_rings) holding at least $min_high high-tier accounts, most high-tier accounts first, with ringwatch's rings among their members.
// params: $min_high, $limit
MATCH (u:User) WHERE u.community IS NOT NULL
WITH u.community AS community, collect(u) AS members
WITH community, members, size([m IN members WHERE m.risk_tier = 'high' | m]) AS high_members
WHERE high_members >= $min_high
RETURN community, size(members) AS size, high_members,
       [m IN members WHERE m.risk_tier = 'medium' | m] <> [] AS has_medium,
       [m IN members | m.user_id] AS accounts,
       reduce(ids = [], m IN members |
         CASE WHEN m.ring_id IS NULL OR m.ring_id IN ids THEN ids ELSE ids + m.ring_id END) AS ring_ids
ORDER BY high_members DESC, size DESC, community
LIMIT $limit;

// name: similar_accounts
// purpose: GDS node similarity (Jaccard over the devices and IPs of the gds_rings projection): the accounts that look most like one account.
// params: $graph_name, $user_id, $limit
MATCH (a:User {user_id: $user_id})
CALL gds.nodeSimilarity.filtered.stream($graph_name,
       {sourceNodeFilter: [a], targetNodeFilter: 'User', topK: $limit})
YIELD node2, similarity
WITH a, gds.util.asNode(node2) AS b, similarity
MATCH p = (a)-[:USED_DEVICE|USED_IP]->(x)<-[:USED_DEVICE|USED_IP]-(b)
WITH b, similarity, collect(p) AS paths, collect(coalesce(x.device_id, x.ip)) AS shared
RETURN b.user_id AS user_id, similarity, shared, b.risk_score AS risk_score, b.risk_tier AS risk_tier,
       b.ring_id AS ring_id, b.community AS community, paths
ORDER BY similarity DESC, user_id;

// name: gds_drop
// purpose: Drop the gds_rings projection (frees its memory; the written `community` stays).
// params: $graph_name
CALL gds.graph.drop($graph_name, false) YIELD graphName
RETURN graphName AS graph_name;
