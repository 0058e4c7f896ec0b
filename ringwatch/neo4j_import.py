"""``ringwatch neo4j import``: fill an empty Neo4j database from event files with Neo4j's offline
importer (``neo4j-admin database import full``), the fast way to load history.

``write_import_files`` runs the one event load of ``ringwatch ingest`` (``ingestion.loader``: read,
map, validate, dedupe, quarantine) into a ``graph.neo4j_import.Neo4jImportWriter`` instead of a
store. ``import_local`` then does the rest for the project's own server (``scripts/neo4j.sh``):
starts it if needed, refuses a database that holds data, writes the files while it still runs,
stops it, imports, starts it again and opens a ``Neo4jGraphStore`` on it, which creates the
constraints, indexes and schema record as the Bolt path does, so streaming ingest continues on
top. For a Neo4j the project does not run, ``import_command`` is the command to run there.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from graph.errors import ConfigError, StoreError
from graph.neo4j_import import ImportFiles, Neo4jImportWriter, admin_arguments, file_names
from graph.neo4j_store import Neo4jGraphStore
from graph.types import EdgeType, NodeType
from ingestion.loader import LoadSummary, load_events
from ingestion.mapping import ColumnMapping
from ingestion.readers import DEFAULT_ENCODING
from ringwatch import local_neo4j
from ringwatch.settings import Settings

#: Off-heap memory the importer may use on the project's server (its default is 90 % of free RAM).
MAX_OFF_HEAP = "1g"


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """One ``ringwatch neo4j import``: the load (the same summary as ``ingest``), the files,
    the importer's command and run (None when only the files were written), the seconds the
    server was down, the seconds creating ringwatch's schema on the imported data, and the
    total seconds."""

    load: LoadSummary
    files: ImportFiles
    command: list[str]
    admin: local_neo4j.AdminResult | None
    downtime_seconds: float
    seconds: float
    schema_seconds: float = 0.0

    def render(self) -> str:
        f = self.files
        out = [self.load.render(), f"  import files in {f.directory}: {f.events:,} events, "
               + ", ".join(f"{k} {v:,}" for k, v in {**f.nodes, **f.relationships}.items())]  # fmt: skip
        if self.admin is None:
            out.append("run this where Neo4j runs (Neo4j stopped, the files readable there; it replaces the database):")
            out.append("  " + shlex.join(self.command))
            out.append("then start Neo4j and run any ringwatch command with NEO4J_URI set (e.g. `ringwatch rings`):")
            out.append("  opening the store creates ringwatch's constraints and indexes")
        else:
            out.append(
                f"  imported in {self.admin.seconds:.1f} s ({self.admin.cpu_seconds:.1f} CPU s; importer peak memory "
                f"{self.admin.peak_rss_bytes / 2**20:,.0f} MiB); server down {self.downtime_seconds:.1f} s; "
                f"constraints and indexes {self.schema_seconds:.1f} s; "
                f"total {self.seconds:.1f} s ({f.events / self.seconds if self.seconds else 0:,.0f} events/s)"
            )
        return "\n".join(out)


def write_import_files(
    sources: Sequence[Path],
    directory: Path,
    *,
    quarantine_dir: Path,
    mapping: ColumnMapping | None = None,
    batch_size: int = 50_000,
    progress: bool = False,
    encoding: str = DEFAULT_ENCODING,
) -> tuple[LoadSummary, ImportFiles]:
    """Load ``sources`` as ``ingest`` does, into importer files under ``directory``.

    Raises:
        ValidationError: as ``load_events`` (unreadable files, columns that cannot be mapped).
    """
    writer = Neo4jImportWriter(directory)
    summary = load_events(
        list(sources), writer, mapping=mapping, quarantine_dir=quarantine_dir, batch_size=batch_size,
        progress=progress, encoding=encoding,
    )  # fmt: skip
    return summary, writer.close()


def import_command(files: ImportFiles, database: str = "neo4j") -> list[str]:
    """The exact ``neo4j-admin`` command line that imports ``files`` into ``database``."""
    return ["neo4j-admin", *admin_arguments(files, database)]


def import_local(
    settings: Settings,
    sources: Sequence[Path],
    directory: Path,
    *,
    mapping: ColumnMapping | None = None,
    batch_size: int = 50_000,
    progress: bool = False,
    encoding: str = DEFAULT_ENCODING,
    keep_files: bool = False,
) -> ImportOutcome:
    """Import ``sources`` into the project's local server (``scripts/neo4j.sh``), which must
    hold no data; it is running afterwards, with ringwatch's schema.

    Raises:
        ConfigError: ``NEO4J_URI`` points at another server (use ``--print-only`` for that one).
        StoreError: the database holds data, or the import failed (the server is started
            again either way), or the imported counts differ from the files.
        ValidationError: as ``load_events``.
    """
    started = time.perf_counter()
    uri = local_neo4j.bolt_uri()
    if settings.neo4j_uri and not _same_local_server(settings.neo4j_uri, uri):
        raise ConfigError(
            f"NEO4J_URI={settings.neo4j_uri!r} is not the project's local server ({uri}); "
            "`ringwatch neo4j import --print-only` writes the files and prints the command for it"
        )
    password = settings.neo4j_password or local_neo4j.password()
    local_neo4j.run("start")
    with Neo4jGraphStore(uri, settings.neo4j_user, password) as store:
        found = store.first_data_labels()
    if found is not None:
        raise StoreError(
            f"Neo4j at {uri} is not empty (it holds :{':'.join(found)} nodes, among others): the offline import "
            "replaces the whole database, so it only fills an empty one; load into this one with `ringwatch ingest`"
        )
    summary, files = write_import_files(
        sources, directory, quarantine_dir=settings.quarantine_dir, mapping=mapping, batch_size=batch_size,
        progress=progress, encoding=encoding,
    )  # fmt: skip
    args = admin_arguments(files, max_off_heap=MAX_OFF_HEAP)
    down = time.perf_counter()
    local_neo4j.run("stop")
    try:
        result = local_neo4j.admin(args)
    except StoreError as e:
        # Start the server again, but report the import's failure, not a failed start after it.
        with contextlib.suppress(StoreError):
            local_neo4j.run("start")
        raise StoreError(f"{e}; the database may be unusable: delete it and start again, or re-run the import") from e
    local_neo4j.run("start")
    downtime = time.perf_counter() - down
    schema = time.perf_counter()
    with Neo4jGraphStore(uri, settings.neo4j_user, password) as store:  # creates the schema
        schema = time.perf_counter() - schema
        stats = store.stats()
    stored = (stats.nodes[NodeType.USER.value], stats.edges[EdgeType.TRANSACTED.value])
    written = (files.nodes["User"], files.relationships["TRANSACTED"])
    if stored != written:
        raise StoreError(
            f"import into {uri}: (users, TRANSACTED) stored {stored}, the files hold {written}; "
            f"see {files.directory / 'import.report'}"
        )
    if not keep_files:
        remove_files(files)
    return ImportOutcome(
        load=summary, files=files, command=["neo4j-admin", *args], admin=result,
        downtime_seconds=downtime, seconds=time.perf_counter() - started, schema_seconds=schema,
    )  # fmt: skip


def remove_files(files: ImportFiles) -> None:
    """Delete the files one import wrote (and the importer's report), and the folder if that
    leaves it empty."""
    for name in file_names():
        (files.directory / name).unlink(missing_ok=True)
    (files.directory / "import.report").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        files.directory.rmdir()


def _same_local_server(uri: str, local: str) -> bool:
    a, b = urlsplit(uri), urlsplit(local)
    loopback = {"127.0.0.1", "localhost", "::1"}
    return a.hostname in loopback and (a.port or 7687) == b.port
