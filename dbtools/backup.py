"""backup_database(): every table, one snapshot, streamed to one file."""

from __future__ import annotations

import datetime
import re
import time
import uuid
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
import orjson
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import F, Field, Func, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.connection import ConnectionDoesNotExist

from . import __version__
from .archive import ArchiveWriter
from .backends import backend_for, pg_fast
from .codec import JSON_NULL_KEY, encoder_for, is_json_null, kind_of
from .conf import COMPRESSIONS, compression_named, get_settings
from .display import sentence
from .envelope import (
    AGE_SUFFIX,
    SUFFIXES,
    backup_suffix,
    file_suffix,
    recipients,
)
from .exceptions import BackupError, ConfigurationError, DatabaseUnavailable
from .graph import Plan, Table, plan_tables
from .interrupts import tell
from .restore.text_reads import UnreadableValue, raw_readers, text_readers
from .signals import announce, backup_finished
from .storage import BackupRef, BackupStore, LocalFolder, backup_location
from .storage.catalog import LATEST_STEM, new_name, older_latest, prune

BATCH_ROWS = 5_000
# orjson gives each encoded row a buffer of 4 KB or more whatever its length,
# so the portable path hands rows on in small groups: 5,000 of them held at
# once cost 20-40 MB.
ENCODED_ROWS = 250
# A label goes into the file name: catalog.TIMESTAMPED reads it back.
LABEL = re.compile(r"[a-z][a-z0-9-]*")
# An encrypted --only backup says so in its name: retention cannot read its header without the key.
PARTIAL = "partial"

Progress = Callable[[str, int, int], None]  # table label, rows done, rows expected


@dataclass
class TableReport:
    label: str
    db_table: str
    rows: int
    seconds: float


@dataclass
class BackupResult:
    path: BackupRef  # a Path, or a StoredBackup in DBTOOLS['STORAGE']
    latest: BackupRef | None
    tables: list[TableReport]
    cycles: list[list[str]]
    seconds: float
    size: int
    pruned: list[BackupRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


# Connections ----------------------------------------------------------------


def vendor_name(connection: BaseDatabaseWrapper) -> str:
    return backend_for(connection).vendor_name()


def database_name(connection: BaseDatabaseWrapper) -> str:
    """The database's name, never its host, user or password (a SQLite path is cut to its file name)."""
    name = str(connection.settings_dict.get("NAME") or "")
    return backend_for(connection).database_name(name)


def connect(alias: str) -> BaseDatabaseWrapper:
    """The connection for `alias`, opened, or a one-line error that says what to check."""
    try:
        connection = connections[alias]
    except ConnectionDoesNotExist:
        raise ConfigurationError(
            f"There is no database {alias!r} in DATABASES; pass one of: {', '.join(connections)}."
        ) from None
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        raise DatabaseUnavailable(describe_connection_error(connection, exc)) from exc
    return connection


def describe_connection_error(connection: BaseDatabaseWrapper, exc: Exception) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    password = str(connection.settings_dict.get("PASSWORD") or "")
    if password:
        detail = detail.replace(password, "***")
    hint = (
        f"Check DATABASES[{connection.alias!r}] in the settings (host, port, user, password, "
        f"database name) and that the server is running."
    )
    if "neon.tech" in str(connection.settings_dict.get("HOST") or ""):
        hint += (
            " On Neon, a suspended endpoint can take a few seconds to wake: try again;"
            " and the connection needs sslmode=require."
        )
    return (
        f"Could not connect to the {vendor_name(connection)} database "
        f"{database_name(connection)!r} (alias {connection.alias!r}): {sentence(detail)} {hint}"
    )


def refuse_if_no_tables(connection: BaseDatabaseWrapper) -> None:
    """A backup of a database with no tables would hold nothing, yet become `latest`."""
    with connection.cursor() as cursor:
        if connection.introspection.table_names(cursor):
            return
    alias = connection.alias
    raise BackupError(
        f"The {vendor_name(connection)} database {database_name(connection)!r} (alias {alias!r}) "
        f"has no tables: it was never migrated, or DATABASES points at another database than you "
        f"meant. Nothing was written. Run `manage.py migrate --database {alias}` first, or check "
        f"DATABASES[{alias!r}]."
    )


@contextmanager
def snapshot(connection: BaseDatabaseWrapper) -> Iterator[bool]:
    """One read-only transaction in which every table is read at the same moment.

    Everything is transaction-scoped (no session SET, no WITH HOLD cursor), so
    it behaves the same through a transaction-mode pooler such as PgBouncer or
    Neon's -pooler endpoint.
    """
    outer = connection.in_atomic_block
    with transaction.atomic(using=connection.alias):
        if not outer:
            backend_for(connection).begin_snapshot()
        yield not outer  # True: the snapshot is ours, with our isolation level


# Rows ---------------------------------------------------------------------------


def needs_paging(connection: BaseDatabaseWrapper) -> bool:
    """True where the driver would hold a whole result in memory."""
    return (
        backend_for(connection).pages_reads
        or bool(connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"))
        or not connection.features.can_use_chunked_reads
    )


class Unconverted(Func):
    """A column as the driver hands it over: its output field has no converters."""

    template = "%(expressions)s"


def read_rows(
    table: Table,
    connection: BaseDatabaseWrapper,
    as_text: Collection[int] = (),
    as_raw: Collection[int] = (),
) -> Iterator[tuple[Any, ...]]:
    """The table's rows as tuples of field values, in primary-key order; the
    fields at the positions `as_text` as the database's text, and those at
    `as_raw` as the driver's value (see text_reads.py)."""
    pk_names = [f.attname for f in table.pk_fields]
    # JSON columns come as the database's own JSON text, written to the file
    # as it is: parsing it only to serialise it again was a third of the time.
    columns = [
        Cast(f.attname, TextField())
        if f.get_internal_type() == "JSONField" or position in as_text
        else Unconverted(F(f.attname), output_field=Field())
        if position in as_raw
        else F(f.attname)
        for position, f in enumerate(table.fields)
    ]
    queryset: QuerySet[Any, tuple[Any, ...]] = (
        QuerySet(model=table.model, using=connection.alias)
        .order_by(*pk_names)
        .values_list(*columns)
    )
    if not needs_paging(connection):
        yield from queryset.iterator(chunk_size=BATCH_ROWS)
        return
    # Keyset pages inside the same snapshot: constant memory, and each page
    # is an index range scan rather than an ever-growing OFFSET.
    pk_positions = [table.fields.index(f) for f in table.pk_fields]
    after: Any = None
    while True:
        page_query = queryset if after is None else queryset.filter(pk__gt=after)
        page = list(page_query[:BATCH_ROWS])
        yield from page
        if len(page) < BATCH_ROWS:
            return
        last = page[-1]
        after = (
            last[pk_positions[0]]
            if len(pk_positions) == 1
            else tuple(last[i] for i in pk_positions)
        )


def dict_builder(names: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """row -> {names[0]: row[0], ...}, as a dict display compiled for these names.

    Python builds a display with constant keys in one step (BUILD_CONST_KEY_MAP):
    309 ns for a ten-column row against 650-800 ns for dict(zip(names, row)),
    which was a tenth of a SQLite backup. The source holds only repr()s of
    the names, each a literal of exactly that string, and indexes."""
    items = ", ".join(f"{name!r}: row[{i}]" for i, name in enumerate(names))
    build: Callable[[Sequence[Any]], dict[str, Any]] = eval(f"lambda row: {{{items}}}")
    return build


def row_encoder(
    table: Table, readers: dict[int, Callable[[Any], Any]] | None = None
) -> Callable[[tuple[Any, ...]], bytes]:
    """Encodes a row; `readers` replace the codec's encoder at their positions."""
    as_dict = dict_builder([f.name for f in table.fields])
    readers = readers or {}
    converters = [
        (i, enc)
        for i, f in enumerate(table.fields)
        if (enc := readers.get(i) or encoder_for(kind_of(f))) is not None
    ]
    # JSON null is written null, like SQL NULL, and named in the row (codec.py).
    json_fields = [
        (i, f.name) for i, f in enumerate(table.fields) if f.get_internal_type() == "JSONField"
    ]
    dumps = orjson.dumps

    def encode(row: tuple[Any, ...]) -> bytes:
        if converters:
            values = list(row)
            json_nulls = [name for i, name in json_fields if is_json_null(values[i])]
            for i, convert in converters:
                if values[i] is not None:
                    values[i] = convert(values[i])
            if json_nulls:
                for i, name in json_fields:
                    if name in json_nulls:
                        values[i] = None
                as_row = as_dict(values)
                as_row[JSON_NULL_KEY] = json_nulls
                return dumps(as_row)
            return dumps(as_dict(values))
        return dumps(as_dict(row))

    return encode


def python_batches(
    table: Table, connection: BaseDatabaseWrapper
) -> Generator[list[bytes], None, None]:
    """The portable path: values from the ORM, encoded by codec.py."""
    as_text = text_readers(table, connection)
    as_raw = raw_readers(table, connection)
    encode = row_encoder(table, {**as_text, **as_raw})
    batch: list[bytes] = []
    for row in read_rows(table, connection, as_text=as_text.keys(), as_raw=as_raw.keys()):
        try:
            batch.append(encode(row))
        except (TypeError, ValueError) as exc:
            pk = [row[table.fields.index(f)] for f in table.pk_fields]
            cause = (
                str(exc)
                if isinstance(exc, UnreadableValue)
                else f"a value cannot be written as JSON ({exc})"
            )
            raise BackupError(
                f"Table {table.label} ({table.db_table}), row with primary key "
                f"{pk[0] if len(pk) == 1 else tuple(pk)!r}: {cause}. "
                f"Fix the value or leave the table out with --exclude {table.label}."
            ) from exc
        if len(batch) >= ENCODED_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


DEFAULT_JOBS = 2


def single_connection_reason(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    folder: Path | None,
    owned: bool,
    encrypting: bool,
) -> str | None:
    """Why this backup must be read on one connection, or None if helpers may read."""
    if not backend_for(connection).shares_snapshots:
        return f"only PostgreSQL can share one snapshot between connections, not {vendor_name(connection)}"
    if not owned:
        # In a caller's transaction the isolation level is the caller's, and
        # its snapshot may not be one to share.
        return "it runs inside a transaction of the caller's"
    if encrypting:
        return "an encrypted backup does not spool rows to local disk in the clear"
    if folder is None:
        return "a backup to a bucket keeps nothing on local disk"
    if connection.alias not in connections.settings:
        return "its connection is not one of settings.DATABASES, so no other can be opened like it"
    if sum(1 for t in plan.tables if backend_for(connection).can_write_rows(t)) < 2:
        return "there are not two tables the server can write as JSON"
    return None


@contextmanager
def helper_readers(
    connection: BaseDatabaseWrapper, plan: Plan, folder: Path | None, helpers: int
) -> Iterator[pg_fast.HelperReaders | None]:
    """On PostgreSQL, `helpers` more connections in the same snapshot read
    tables from the end of the plan, so several server processes build rows
    at once. Call with helpers > 0 only where single_connection_reason() found
    no reason against it (and so `folder` is the backup's)."""
    readers = None
    if helpers > 0:
        assert folder is not None
        readers = pg_fast.HelperReaders(connection, list(plan.tables), folder, BATCH_ROWS, helpers)
    try:
        yield readers
    finally:
        if readers is not None:
            readers.close()


def describe_table(table: Table) -> dict[str, Any]:
    """What a restore needs to know about a table without importing its model."""
    columns = []
    for f in table.fields:
        column: dict[str, Any] = {
            "name": f.name,
            "attname": f.attname,
            "column": f.column,
            "type": f.get_internal_type(),
            "kind": kind_of(f),
            "null": f.null,
        }
        if f.is_relation and f.remote_field is not None:
            column["references"] = f.remote_field.model._meta.label
        columns.append(column)
    return {
        "label": table.label,
        "db_table": table.db_table,
        "pk": [f.name for f in table.pk_fields],
        "auto_created": bool(table.model._meta.auto_created),
        "columns": columns,
    }


def applied_migrations(connection: BaseDatabaseWrapper) -> dict[str, list[str]]:
    recorder = MigrationRecorder(connection)
    if not recorder.has_table():
        return {}
    applied: dict[str, list[str]] = {}
    for app_label, name in sorted(recorder.applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


def count_rows(table: Table, connection: BaseDatabaseWrapper) -> int:
    return QuerySet(model=table.model, using=connection.alias).count()


def write_table(
    writer: ArchiveWriter,
    table: Table,
    connection: BaseDatabaseWrapper,
    progress: Progress | None,
    helpers: pg_fast.HelperReaders | None = None,
) -> TableReport:
    started = time.monotonic()
    expected = count_rows(table, connection) if progress else 0
    writer.begin_table(describe_table(table))
    spooled = helpers.result(table) if helpers and not helpers.take(table) else None
    if spooled is not None:
        writer.copy_rows(spooled.path, spooled.rows)
        spooled.path.unlink()
        if progress:
            progress(table.label, spooled.rows, expected)
        rows, _ = writer.end_table()
        return TableReport(table.label, table.db_table, rows, time.monotonic() - started)
    backend = backend_for(connection)
    batches: Generator[list[str] | list[bytes], None, None] = (
        backend.write_row_batches(table, BATCH_ROWS)
        if backend.can_write_rows(table)
        else python_batches(table, connection)
    )
    done = 0
    # Closed here, not whenever the generator is collected: a traceback keeps
    # it alive, and with it row_batches' reader thread and its cursor.
    with closing(batches):
        for batch in batches:
            writer.write_rows(batch)
            done += len(batch)
            if progress:
                progress(table.label, done, expected)
    rows, _ = writer.end_table()
    return TableReport(table.label, table.db_table, rows, time.monotonic() - started)


# Files ----------------------------------------------------------------------------


def wanted_compression(compress: bool | str | None) -> str | None:
    """The compression asked for (None: DBTOOLS['COMPRESS']), or a one-line error."""
    if compress not in (None, True, False, *COMPRESSIONS):
        raise ConfigurationError(
            f"Unknown compression {compress!r}; choose {' or '.join(COMPRESSIONS)}."
        )
    return get_settings().compress if compress is None else compression_named(compress)


def resolve_output(
    output: str | Path | None,
    compress: bool | str | None,
    now: datetime.datetime,
    encrypt: bool,
    folder: Path | None = None,
) -> tuple[Path, str | None, bool]:
    """(file to write, its compression, is it in a backups folder that keeps `latest`?).

    A file name given with --output decides the compression by its suffix;
    without one, the backup goes in `folder` (default: DBTOOLS['BACKUP_DIR']).
    """
    wanted = wanted_compression(compress)
    target = Path(output) if output else folder or get_settings().backup_dir
    suffix = backup_suffix(target.name)
    if suffix:
        named = next((c for c in COMPRESSIONS if SUFFIXES[c] in suffix), None)
        if compress not in (None, False) and wanted != named:
            raise ConfigurationError(
                f"--compress {wanted} writes {file_suffix(wanted, encrypt)}, but {target.name} "
                f"does not end so; name the file {target.name.removesuffix(suffix)}"
                f"{file_suffix(wanted, encrypt)}, or leave out --compress."
            )
        if suffix.endswith(AGE_SUFFIX) != encrypt:
            raise ConfigurationError(
                f"{target.name} "
                + (
                    f"ends in {AGE_SUFFIX}, but DBTOOLS['ENCRYPT_TO'] is empty, so it would not be "
                    f"encrypted; set it, or leave {AGE_SUFFIX} out of the name."
                    if not encrypt
                    else f"would be encrypted (DBTOOLS['ENCRYPT_TO'] is set) but does not end in "
                    f"{AGE_SUFFIX}; name it {target.name}{AGE_SUFFIX}."
                )
            )
        return target, named, False
    if output and target.suffix and not target.is_dir():
        allowed = [file_suffix(c, encrypt) for c in (None, *COMPRESSIONS)]
        raise ConfigurationError(
            f"--output {output} names a file (its name has a suffix), but a backup file's name "
            f"ends in {', '.join(allowed[:-1])} or {allowed[-1]}; name it "
            f"{target.stem.removesuffix('.json')}{file_suffix(wanted, encrypt)}, or, for a "
            f"folder of that name, create it first."
        )
    return (
        target / new_name(now, file_suffix(wanted, encrypt), lambda n: (target / n).exists()),
        wanted,
        True,
    )


# The whole backup ------------------------------------------------------------------


def backup_database(
    *,
    using: str = "default",
    output: str | Path | None = None,
    only: Sequence[str] = (),
    exclude: Sequence[str] | None = None,
    compress: bool | str | None = None,
    keep: int | None = None,
    include_unmanaged: bool = False,
    label: str | None = None,
    progress: Progress | None = None,
    encrypt_to: Sequence[str] | None = None,
    announce_result: bool = True,
    jobs: int | None = None,
) -> BackupResult:
    """Write a backup of database `using` and return what was written.

    `label` adds a word to the file name (safemigrate uses "pre-migrate").
    Nothing is left behind on failure: the file appears only when complete.
    `encrypt_to` lists age public keys (None: DBTOOLS['ENCRYPT_TO']; empty: plain).
    Then `backup_finished` is sent, unless `announce_result` is false (a
    replay's intermediate file is no backup of the user's). `jobs` is how
    many connections read on PostgreSQL, sharing one snapshot (None: 2).
    """
    started = time.monotonic()
    for option, value in (("--keep", keep), ("--jobs", jobs)):
        if value is not None and (type(value) is not int or value < 1):
            raise ConfigurationError(
                f"{option} must be a whole number of 1 or more, not {value!r}."
            )
    if label is not None and not LABEL.fullmatch(label):
        raise ConfigurationError(
            f"A backup's label goes into its file name: lower-case letters, digits and dashes, "
            f"starting with a letter, not {label!r}."
        )
    conf = get_settings()
    exclude = conf.exclude if exclude is None else exclude
    keep = conf.keep if keep is None else keep
    keep_pre_migrate = conf.keep_pre_migrate
    now = datetime.datetime.now(datetime.UTC)
    keys = conf.encrypt_to if encrypt_to is None else encrypt_to
    sealed_to = recipients(keys) if keys else []
    # --output is always a local file; otherwise DBTOOLS['STORAGE'] or the backups folder.
    location = backup_location() if output is None else None
    store: BackupStore
    if location is not None and location.folder is None:  # a bucket: no --output names there
        store = location
        compression, in_folder = wanted_compression(compress), True
        name = new_name(now, file_suffix(compression, bool(sealed_to)), location.taken)
    else:
        path, compression, in_folder = resolve_output(
            output, compress, now, bool(sealed_to), folder=location.folder if location else None
        )
        store, name = LocalFolder(path.parent), path.name
    if in_folder and sealed_to and only:
        label = f"{label}-{PARTIAL}" if label else PARTIAL
    if label and in_folder:
        name = name.replace("db-backup-", f"db-backup-{label}-", 1)
    connection = connect(using)
    refuse_if_no_tables(connection)
    plan = plan_tables(using, only=only, exclude=exclude, include_unmanaged=include_unmanaged)
    warnings = store.prepare()

    try:
        writer = ArchiveWriter(None, compression, encrypt_to=sealed_to, sink=store.writer(name))
    except OSError as exc:
        raise BackupError(
            f"Cannot write in {store}: {exc.strerror or exc}. Choose another folder with --output."
        ) from exc
    try:
        with snapshot(connection) as owned:
            meta = describe_backup(connection, plan, now, only, exclude, include_unmanaged)
            writer.write_header(meta)
            spool_in = store.folder  # a spool is plaintext on local disk
            alone = single_connection_reason(connection, plan, spool_in, owned, bool(sealed_to))
            if alone and jobs is not None and jobs > 1:
                warnings.append(f"--jobs {jobs} was not used: {alone}; one connection read it all.")
            extra = 0 if alone else (DEFAULT_JOBS if jobs is None else jobs) - 1
            with helper_readers(connection, plan, spool_in, extra) as helpers:
                reports = [
                    write_table(writer, t, connection, progress, helpers) for t in plan.tables
                ]
        written: BackupRef = writer.commit()
    except OSError as exc:
        writer.abort()
        raise BackupError(
            f"Writing {name} failed: {exc.strerror or exc}. Nothing was kept; "
            f"earlier backups are untouched. Free some space or choose another folder with --output."
        ) from exc
    except DatabaseError as exc:
        writer.abort()
        raise BackupError(
            f"Reading the database failed: {' '.join(str(exc).split())}. Nothing was kept; "
            f"earlier backups are untouched."
        ) from exc
    except BaseException as exc:
        writer.abort()
        if announce_result:  # else a scratch copy: its caller says what stands
            tell(
                exc,
                "Nothing was kept (the unfinished backup was removed); earlier backups are untouched.",
            )
        raise

    latest: BackupRef | None = None
    pruned: list[BackupRef] = []
    # What an interrupt from here on leaves: the backup is complete, and the
    # steps after it are each done or not.
    left = "db-backup-latest was not updated and no old backup was deleted." if in_folder else ""
    try:
        if in_folder:
            latest_name = LATEST_STEM + file_suffix(compression, bool(sealed_to))
            latest = store.publish_copy(written, latest_name)
            others = older_latest(store, latest_name)
            left = f"{latest_name} now holds it; older copies of latest or old backups may remain."
            for other in others:
                other.delete()
            if keep or keep_pre_migrate:
                pruned = prune(store, keep, keep_pre_migrate)
        left = ("it is the latest backup; " if in_folder else "") + (
            "a backup_finished receiver was cut short."
        )
        result = BackupResult(
            path=written,
            latest=latest,
            tables=reports,
            cycles=[list(c) for c in plan.cycles],
            seconds=time.monotonic() - started,
            size=written.size,
            pruned=pruned,
            warnings=warnings,
        )
        if announce_result:
            result.warnings += announce(
                backup_finished, backup_database, result=result, using=using
            )
    except BaseException as exc:
        if announce_result:
            tell(exc, f"The backup {written.name} is complete{'; ' if left else '.'}{left}")
        raise
    return result


def describe_backup(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    now: datetime.datetime,
    only: Sequence[str],
    exclude: Sequence[str],
    include_unmanaged: bool,
) -> dict[str, Any]:
    return {
        "backup_id": uuid.uuid4().hex,
        "created_at": now.isoformat(),
        "dbtools_version": __version__,
        "django_version": django.get_version(),
        "vendor": connection.vendor,
        "database": database_name(connection),
        "use_tz": settings.USE_TZ,
        "time_zone": settings.TIME_ZONE,
        "only": list(only),
        "exclude": list(exclude),
        "include_unmanaged": include_unmanaged,
        "migrations": applied_migrations(connection),
        "order": plan.labels(),
        "cycles": [list(c) for c in plan.cycles],
    }
