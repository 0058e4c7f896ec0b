"""Named investigation queries for Neo4j Browser, loaded from ``neo4j/investigation.cypher``.

The ``.cypher`` file is what investigators paste into Browser; this module reads the same file, so
notebooks, tests and tools run exactly the queries the README documents. Each query in the file
is three header comment lines and its Cypher::

    // name: expand_ring
    // purpose: One ring with its members and the devices and IPs they share.
    // params: $ring_id
    MATCH (r:Ring {ring_id: $ring_id}) ...;

``params`` lists every ``$parameter`` the Cypher uses (``none`` for none). The loader checks
that declared and used parameters agree and refuses anything that looks like a value pasted into
the text (Python ``%``/``{}`` format fields, ``${...}``, Cypher 3's ``{param}`` syntax), because
values must only ever reach Neo4j as parameters.

The file lives in the repository's ``neo4j/`` folder, beside ``neo4j/ringwatch.grass``; it is not
installed into site-packages with the wheel. ``load_queries()`` resolves it relative to this
checkout; an installed copy passes the file's path explicitly (``load_queries(path)``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from graph.errors import NotFoundError, ValidationError

#: ``neo4j/investigation.cypher`` in the checkout this module was imported from.
DEFAULT_QUERIES_PATH = Path(__file__).resolve().parents[1] / "neo4j" / "investigation.cypher"

#: Queries the investigators' README promises; ``load_queries`` refuses a file without them.
REQUIRED_QUERIES: tuple[str, ...] = (
    "top_rings",
    "expand_ring",
    "shared_identifiers",
    "shortest_path",
    "new_accounts_near_ring",
    "ring_transactions_at_merchant",
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAM = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_HEADER = re.compile(r"^//\s*(name|purpose|params)\s*:\s*(.*?)\s*$")
_PARAM_USE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# Text that only appears when a value is formatted into the query instead of passed as a parameter.
_INTERPOLATION = (
    (re.compile(r"%[sdr(]"), "a %-format field"),
    (re.compile(r"\$\{"), "a ${...} template field"),
    (re.compile(r"\{\s*\}"), "an empty {} format field"),
    (re.compile(r"\{\s*[A-Za-z_0-9]*\s*(![rsa])?\s*\}"), "a {name} format field (or Cypher 3 {param} syntax)"),
    (re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_]\w*\s*\}"), "a {obj.attr} format field"),
)
# String literals and comments, removed before looking for parameters and format fields.
_STRINGS_AND_COMMENTS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|//[^\n]*|/\*.*?\*/", re.S)


@dataclass(frozen=True, slots=True)
class InvestigationQuery:
    """One named query: ``params`` are names without ``$``, in the order the header lists them."""

    name: str
    purpose: str
    params: tuple[str, ...]
    cypher: str

    def parameters(self, values: Mapping[str, object]) -> dict[str, object]:
        """The parameter map for running this query, checked against ``params``.

        Raises:
            ValidationError: a declared parameter is missing or an undeclared one is given.
        """
        missing = [p for p in self.params if p not in values]
        if missing:
            raise ValidationError(f"{self.name}.params", sorted(values), f"missing ${', $'.join(missing)}")
        extra = sorted(set(values) - set(self.params))
        if extra:
            raise ValidationError(f"{self.name}.params", extra, f"not parameters of {self.name}")
        return {p: values[p] for p in self.params}


def used_parameters(cypher: str) -> frozenset[str]:
    """Names of the ``$parameters`` in ``cypher``, ignoring string literals and comments."""
    return frozenset(_PARAM_USE.findall(_STRINGS_AND_COMMENTS.sub(" ", cypher)))


def parse_queries(text: str, source: str = "<string>") -> dict[str, InvestigationQuery]:
    """Parse the text of an investigation ``.cypher`` file into queries by name (file order).

    Lines before the first ``// name:`` must be comments or blank. A trailing ``;`` ends a query;
    a ``;`` inside one (several statements) is refused.

    Raises:
        ValidationError: a header line missing, out of order or malformed; a duplicate name; an
            empty query; declared and used parameters that differ; interpolation-looking text.
            ``field`` names the file, line and query.
    """
    queries: dict[str, InvestigationQuery] = {}
    lines = text.splitlines()
    i = 0
    # Preamble: comments and blank lines only.
    while i < len(lines) and not _is_header(lines[i], "name"):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("//"):
            raise ValidationError(f"{source}:{i + 1}", stripped, "Cypher before the first '// name:' header")
        i += 1
    while i < len(lines):
        start = i
        header: dict[str, str] = {}
        for key in ("name", "purpose", "params"):
            if i >= len(lines) or not _is_header(lines[i], key):
                got = lines[i].strip() if i < len(lines) else "<end of file>"
                where = f" after '// name: {header['name']}'" if "name" in header else ""
                raise ValidationError(f"{source}:{i + 1}", got, f"expected '// {key}: ...'{where}")
            match = _HEADER.match(lines[i].strip())
            assert match is not None  # _is_header matched
            header[key] = match.group(2)
            i += 1
        body_start = i
        while i < len(lines) and not _is_header(lines[i], "name"):
            i += 1
        query = _make_query(header, "\n".join(lines[body_start:i]), f"{source}:{start + 1}")
        if query.name in queries:
            raise ValidationError(f"{source}:{start + 1}", query.name, "duplicate query name")
        queries[query.name] = query
    if not queries:
        raise ValidationError(source, "", "no '// name:' queries in the file")
    return queries


def load_queries(path: Path | str | None = None, *, require: tuple[str, ...] = REQUIRED_QUERIES) -> dict[str, InvestigationQuery]:
    """Load the named queries from ``path`` (default ``DEFAULT_QUERIES_PATH``).

    Args:
        path: the ``.cypher`` file; ``None`` means this checkout's ``neo4j/investigation.cypher``.
        require: names that must be present (the documented six by default; ``()`` for none).

    Raises:
        NotFoundError: the file does not exist (e.g. an installed wheel: pass the path).
        ValidationError: the file is malformed (see ``parse_queries``) or lacks a required name.
    """
    file = Path(path) if path is not None else DEFAULT_QUERIES_PATH
    if not file.is_file():
        raise NotFoundError("investigation query file", str(file))
    queries = parse_queries(file.read_text(encoding="utf-8"), source=str(file))
    missing = [name for name in require if name not in queries]
    if missing:
        raise ValidationError(str(file), sorted(queries), f"missing required queries: {', '.join(missing)}")
    return queries


def _is_header(line: str, key: str) -> bool:
    match = _HEADER.match(line.strip())
    return match is not None and match.group(1) == key


def _make_query(header: dict[str, str], body: str, where: str) -> InvestigationQuery:
    name, purpose, params_text = header["name"], header["purpose"], header["params"]
    if not _NAME.match(name):
        raise ValidationError(f"{where}.name", name, "must be snake_case ([a-z][a-z0-9_]*)")
    if not purpose:
        raise ValidationError(f"{where}.{name}.purpose", purpose, "must not be empty")
    params = _parse_params(params_text, f"{where}.{name}.params")

    cypher = body.strip()
    if cypher.endswith(";"):
        cypher = cypher[:-1].rstrip()
    code = _STRINGS_AND_COMMENTS.sub(" ", cypher)
    if not code.strip():
        raise ValidationError(f"{where}.{name}", cypher, "query has no Cypher")
    if ";" in code:
        raise ValidationError(f"{where}.{name}", cypher, "one statement per query (found ';' inside)")
    # Placeholders inside string literals count too: that is where a formatted value would land.
    without_comments = _STRINGS_AND_COMMENTS.sub(lambda m: m.group(0) if m.group(0)[0] in "'\"`" else " ", cypher)
    for pattern, what in _INTERPOLATION:
        found = pattern.search(without_comments)
        if found:
            raise ValidationError(
                f"{where}.{name}", found.group(0), f"looks like {what}: pass values as $parameters"
            )

    used = used_parameters(cypher)
    undeclared = sorted(used - set(params))
    if undeclared:
        raise ValidationError(f"{where}.{name}.params", params_text, f"used but not declared: ${', $'.join(undeclared)}")
    unused = [p for p in params if p not in used]
    if unused:
        raise ValidationError(f"{where}.{name}.params", params_text, f"declared but not used: ${', $'.join(unused)}")
    return InvestigationQuery(name=name, purpose=purpose, params=params, cypher=cypher)


def _parse_params(text: str, field: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    names: list[str] = []
    for item in text.split(","):
        match = _PARAM.match(item.strip())
        if not match:
            raise ValidationError(field, item.strip(), "each parameter must be written $name, comma-separated")
        if match.group(1) in names:
            raise ValidationError(field, item.strip(), "declared twice")
        names.append(match.group(1))
    return tuple(names)


def _cypher_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + "".join(_cypher_char(c) for c in value) + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cypher_literal(v) for v in value) + "]"
    raise ValidationError("value", value, "only text, numbers, booleans and lists can be shown as :param")


# Characters that end a line somewhere (Browser splits :param lines on them) or are invisible.
_LINE_BREAKING = frozenset("\x85\u2028\u2029\x7f")


def _cypher_char(c: str) -> str:
    """One character of a single-quoted Cypher string: quote and backslash escaped, control and
    line-separator characters as ``\\uXXXX`` so that a ``:param`` stays on its line."""
    if c in "\\'":
        return "\\" + c
    if ord(c) < 0x20 or c in _LINE_BREAKING:
        return f"\\u{ord(c):04x}"
    return c


def browser_snippet(query: InvestigationQuery, values: Mapping[str, object]) -> str:
    """What to paste into Neo4j Browser to run ``query``: one ``:param name => value`` line per
    parameter, then the query. Values go in as parameters, never into the Cypher text.

    Raises:
        ValidationError: a parameter is missing or unknown, or a value is not text, a number, a
            boolean or a list of those.
    """
    params = query.parameters(values)
    lines = [f"// {query.name}: {query.purpose}"]
    lines += [f":param {k} => {_cypher_literal(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n\n" + query.cypher + ";"
