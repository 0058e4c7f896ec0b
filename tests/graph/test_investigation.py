"""The investigation query file, its loader and Browser snippets, without Neo4j; and the Browser style file.

The queries themselves run against a real server in ``test_investigation_neo4j.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graph.errors import NotFoundError, ValidationError
from graph.investigation import (
    DEFAULT_QUERIES_PATH,
    REQUIRED_QUERIES,
    InvestigationQuery,
    browser_snippet,
    load_queries,
    parse_queries,
    used_parameters,
)
from graph.types import NodeType

GRASS = DEFAULT_QUERIES_PATH.parent / "ringwatch.grass"

GOOD = """\
// A preamble of comments is fine.

// name: one
// purpose: First query.
// params: $ring_id
MATCH (r:Ring {ring_id: $ring_id}) RETURN r;

// name: two
// purpose: Second, no parameters, a string literal that mentions '$not_a_param'.
// params: none
MATCH (u:User) WHERE u.risk_tier = 'high' // trailing comment with $nothing
RETURN u.user_id AS user_id
"""


# -- the repository's file ------------------------------------------------------------------------


def test_the_repository_file_has_the_six_documented_queries() -> None:
    queries = load_queries()
    assert set(REQUIRED_QUERIES) <= set(queries)
    for name, q in queries.items():
        assert q.name == name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert q.purpose and q.cypher and not q.cypher.endswith(";")


def test_every_parameter_used_in_the_file_is_declared_and_every_declared_one_is_used() -> None:
    text = DEFAULT_QUERIES_PATH.read_text()
    for q in load_queries().values():
        assert used_parameters(q.cypher) == set(q.params), q.name
        assert q.params, f"{q.name}: an investigation query without inputs is not expected here"
    # The whole file's Cypher uses no parameter that no query declares.
    declared = {p for q in load_queries().values() for p in q.params}
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    assert used_parameters(body) <= declared


def test_the_file_pastes_no_values_into_cypher() -> None:
    for q in load_queries().values():
        code = re.sub(r"'[^']*'", "''", q.cypher)  # the only literals are tier names, labels and GDS settings
        assert "%s" not in code and "${" not in code and "{}" not in code, q.name
        assert not re.search(r"\{\s*[A-Za-z_]\w*\s*\}", code), f"{q.name}: a {{name}} format field"
        assert not re.search(r"\+\s*\$|\$\w+\s*\+\s*'", code), f"{q.name}: string concatenation with a parameter"
        literals = set(re.findall(r"'([^']*)'", q.cypher))
        gds = {"User", "*", "community"}  # projection labels, all relationship types, the written property
        assert literals <= {"high", "medium", "low", "Device", "IP", "", *gds}, (q.name, literals)


def test_required_queries_name_their_expected_parameters() -> None:
    q = load_queries()
    assert q["top_rings"].params == ("limit",)
    assert q["expand_ring"].params == ("ring_id",)
    assert "user_id" in q["shared_identifiers"].params
    assert q["shortest_path"].params == ("from_user", "to_user")
    assert q["new_accounts_near_ring"].params == ("ring_id", "since")
    assert q["ring_transactions_at_merchant"].params == ("ring_id", "merchant_id")


def test_shortest_path_only_walks_device_and_ip_links() -> None:
    cypher = load_queries()["shortest_path"].cypher
    hops = re.findall(r"\[:([A-Z_|]+)\*", cypher)
    assert hops and all(set(h.split("|")) == {"USED_DEVICE", "USED_IP"} for h in hops)


# -- parsing -----------------------------------------------------------------------------------------


def test_parse_reads_names_purposes_params_and_cypher_in_file_order() -> None:
    queries = parse_queries(GOOD)
    assert list(queries) == ["one", "two"]
    assert queries["one"] == InvestigationQuery(
        name="one", purpose="First query.", params=("ring_id",), cypher="MATCH (r:Ring {ring_id: $ring_id}) RETURN r"
    )
    assert queries["two"].params == ()
    assert queries["two"].cypher.endswith("RETURN u.user_id AS user_id")


def test_parameters_checks_the_values_against_the_declaration() -> None:
    q = parse_queries(GOOD)["one"]
    assert q.parameters({"ring_id": "ring-1"}) == {"ring_id": "ring-1"}
    with pytest.raises(ValidationError, match=r"missing \$ring_id"):
        q.parameters({})
    with pytest.raises(ValidationError, match="not parameters of one"):
        q.parameters({"ring_id": "ring-1", "extra": 1})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("MATCH (n) RETURN n\n// name: a\n// purpose: p\n// params: none\nRETURN 1", "Cypher before the first"),
        ("// name: a\n// params: none\nRETURN 1", r"expected '// purpose: \.\.\.' after '// name: a'"),
        ("// name: a\n// purpose: p\nRETURN 1", r"expected '// params: \.\.\.'"),
        ("// name: BadName\n// purpose: p\n// params: none\nRETURN 1", "snake_case"),
        ("// name: a\n// purpose:\n// params: none\nRETURN 1", "must not be empty"),
        ("// name: a\n// purpose: p\n// params: none\n", "query has no Cypher"),
        ("// name: a\n// purpose: p\n// params: ring_id\nRETURN $ring_id", r"written \$name"),
        ("// name: a\n// purpose: p\n// params:\nRETURN 1", r"written \$name"),
        ("// name: a\n// purpose: p\n// params: $x, $x\nRETURN $x", "declared twice"),
        ("// name: a\n// purpose: p\n// params: none\nRETURN $x", r"used but not declared: \$x"),
        ("// name: a\n// purpose: p\n// params: $x, $y\nRETURN $x", r"declared but not used: \$y"),
        ("// name: a\n// purpose: p\n// params: none\nRETURN 1; RETURN 2", "one statement per query"),
        ("// name: a\n// purpose: p\n// params: none\nRETURN 1\n// name: a\n// purpose: p\n// params: none\nRETURN 2",
         "duplicate query name"),
        ("// just comments", "no '// name:' queries"),
    ],
)  # fmt: skip
def test_malformed_files_are_refused_with_the_line_and_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        parse_queries(text, source="q.cypher")
    assert err.value.field.startswith("q.cypher")


@pytest.mark.parametrize(
    "cypher",
    [
        "MATCH (u:User {user_id: '%s'}) RETURN u",
        "MATCH (u:User {user_id: '{user_id}'}) RETURN u",
        "MATCH (u:User) WHERE u.user_id = {user_id} RETURN u",  # Cypher 3 parameters, or str.format
        "MATCH (u:User) WHERE u.user_id = '${user_id}' RETURN u",
        "MATCH (u:User) WHERE u.user_id = '{}' RETURN u",
        "MATCH (u:User) WHERE u.user_id = {0} RETURN u",
        "MATCH (u:User) WHERE u.user_id = {args.user} RETURN u",
    ],
)
def test_interpolated_values_are_refused(cypher: str) -> None:
    # Placeholders inside string literals count too: that is where a formatted value would land.
    with pytest.raises(ValidationError, match="pass values as \\$parameters"):
        parse_queries(f"// name: a\n// purpose: p\n// params: none\n{cypher}")


def test_maps_and_subqueries_are_not_mistaken_for_format_fields() -> None:
    text = (
        "// name: a\n// purpose: p\n// params: $k\n"
        "MATCH (n:User {user_id: $k}) RETURN n {.user_id, .risk_tier} AS n, COUNT { (n)--() } AS degree"
    )
    assert parse_queries(text)["a"].params == ("k",)


def test_used_parameters_ignores_strings_and_comments() -> None:
    assert used_parameters("RETURN $a, '$b', \"$c\" // $d\n, $e /* $f */") == {"a", "e"}


def test_load_queries_names_a_missing_file_and_missing_required_queries(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="investigation query file"):
        load_queries(tmp_path / "nope.cypher")
    path = tmp_path / "q.cypher"
    path.write_text(GOOD)
    with pytest.raises(ValidationError, match="missing required queries: top_rings"):
        load_queries(path)
    assert set(load_queries(path, require=("one",))) == {"one", "two"}


# -- the Browser style ----------------------------------------------------------------------------


def parse_grass(text: str) -> dict[str, dict[str, str]]:
    """Neo4j Browser's own GraSS reading (GraphStyle.ts ``parse``): selector { key: value; ... },
    quotes stripped, no comments, a selector is a tag plus labels joined by dots."""
    rules: dict[str, dict[str, str]] = {}
    for selector, body in re.findall(r"([^{}\s][^{}]*?)\s*\{([^{}]*(?:'[^']*'[^{}]*)*)\}", text):
        props = {}
        for item in body.replace("'", "").split(";"):
            if ":" in item:
                key, value = item.split(":", 1)
                props[key.strip()] = value.strip()
        rules[selector.strip()] = props
    return rules


def test_grass_styles_every_label_with_a_caption_of_its_key() -> None:
    text = GRASS.read_text()
    assert "/*" not in text and "//" not in text, "Browser's GraSS parser has no comments"
    rules = parse_grass(text)
    for node_type in NodeType:
        assert rules[f"node.{node_type.value}"]["caption"] == "{" + node_type.key + "}"


def test_grass_colours_users_by_tier_label_and_sizes_rings_by_size_label() -> None:
    rules = parse_grass(GRASS.read_text())
    order = list(rules)
    tiers = [rules[f"node.{label}"]["color"] for label in ("LowRisk", "MediumRisk", "HighRisk")]
    assert len(set(tiers)) == 3 and rules["node.User"]["color"] not in tiers
    # Later rules win in Browser: the tier rules must follow node.User to recolour users.
    assert all(order.index(f"node.{t}") > order.index("node.User") for t in ("LowRisk", "MediumRisk", "HighRisk"))
    sizes = [int(rules[f"node.{label}"]["diameter"].removesuffix("px")) for label in ("SmallRing", "MidRing", "LargeRing")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert all(order.index(f"node.{s}") > order.index("node.Ring") for s in ("SmallRing", "MidRing", "LargeRing"))


def test_browser_snippet_passes_values_as_parameters() -> None:
    q = load_queries()["expand_ring"]
    text = browser_snippet(q, {"ring_id": "ring-o'brien"})
    assert ":param ring_id => 'ring-o\\'brien'" in text
    assert text.endswith(q.cypher + ";") and "o'brien" not in q.cypher
    with pytest.raises(ValidationError):
        browser_snippet(q, {})
    # Line separators and control characters would split the :param line: escaped as \uXXXX.
    tricky = "a\u2028b\u2029c\x85d\ne\rf\tg\\h"
    lines = browser_snippet(q, {"ring_id": tricky}).splitlines()
    param = next(line for line in lines if line.startswith(":param"))
    assert param == ":param ring_id => 'a\\u2028b\\u2029c\\u0085d\\u000ae\\u000df\\u0009g\\\\h'"
    assert len(lines) == len(browser_snippet(q, {"ring_id": "x"}).splitlines())
