"""The k-hop neighbourhood walk shared by every ``GraphStore`` backend.

Backends differ only in how they fetch the edges at a frontier of nodes (SQL per node, Cypher per
frontier); the walk, its limits and the order of the result are defined once here, so that both
stores return the same ``Subgraph`` for the same graph (the conformance suite checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from graph.types import EdgeType, NodeType, SubgraphEdge

#: Edges kept per node of the limit: a subgraph of ``limit`` nodes has at most this many times
#: ``limit`` edges, so a hub (a carrier IP with thousands of users) cannot flood the answer.
EDGES_PER_NODE = 4

Node = tuple[NodeType, str]
EdgeKey = tuple[EdgeType, Node, Node, str | None]
#: Edges at each frontier node with the node at their other end (at most ``cap`` per node), and
#: whether any node had more than that.
Adjacency = Callable[[list[Node], int], tuple[Mapping[Node, Sequence[tuple[SubgraphEdge, Node]]], bool]]

_NODE_ORDER = {t: i for i, t in enumerate(NodeType)}
_EDGE_ORDER = {t: i for i, t in enumerate(EdgeType)}


def node_sort_key(node: Node) -> tuple[int, str]:
    """Nodes in (type, key) order: the order frontiers and results use."""
    return (_NODE_ORDER[node[0]], node[1])


def walk(center: Node, hops: int, limit: int, adjacent: Adjacency) -> tuple[dict[Node, int], list[SubgraphEdge], bool]:
    """Breadth-first from ``center`` for ``hops`` hops, keeping at most ``limit`` nodes.

    Returns each node's depth, the edges among the kept nodes in (type, source, target, txn_id)
    order, cut at ``limit * EDGES_PER_NODE``, and whether anything was cut. The last pass
    (depth == hops) adds no nodes, only the edges between nodes already in, so that e.g. a
    Device-IP link at the rim shows.
    """
    edge_cap = limit * EDGES_PER_NODE
    depth_of: dict[Node, int] = {center: 0}
    edges: dict[EdgeKey, SubgraphEdge] = {}
    truncated = False
    frontier = [center]
    for depth in range(hops + 1):
        grow = depth < hops
        around, more = adjacent(frontier, edge_cap + 1)
        truncated |= more
        found: list[Node] = []
        for node in frontier:
            for edge, other in around.get(node, ()):
                if other not in depth_of:
                    if not grow:
                        continue
                    if len(depth_of) >= limit:
                        truncated = True
                        continue
                    depth_of[other] = depth + 1
                    found.append(other)
                edges[(edge.edge_type, edge.source, edge.target, edge.txn_id)] = edge
        frontier = sorted(found, key=node_sort_key)
        if not frontier:
            break
    ordered = sorted(
        edges.values(),
        key=lambda e: (_EDGE_ORDER[e.edge_type], node_sort_key(e.source), node_sort_key(e.target), e.txn_id or ""),
    )
    return depth_of, ordered[:edge_cap], truncated or len(ordered) > edge_cap
