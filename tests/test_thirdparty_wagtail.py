"""A real project's upgrade, end to end: a Wagtail 7.0 site backed up, Wagtail
upgraded to 8.0, the backup restored three ways, each result compared with
what Django's own `migrate` makes of the original database.

The Wagtail site (tests/thirdparty) runs in a virtualenv of its own,
`.venv-wagtail` at the repository root, with the pinned versions of
tests/thirdparty/requirements-wagtail{7,8}.txt and this checkout installed
editable. It is reused locally while its pins and pyproject.toml are
unchanged, and made anew under CI=true.

The flow, on PostgreSQL and on SQLite (under CI=true on PostgreSQL only, unless
DBTOOLS_FULL_MATRIX=1), each with databases of this run's own:
migrate + seedwagtail under 7.0.3, backupdb, upgrade to 8.0.1, then
- reference: a copy of the original database, migrated by `migrate`;
- (a) an empty database, `restoredb --no-input` (no flag);
- (b) a migrated database holding other content, `restoredb --replace --replay`;
- (c) a migrated database holding only the migrations' rows, `restoredb` (a merge),
  and the same with `--replay`.
Each result must equal the reference, every table, rows as sets, content
types and permissions (and every column pointing at them) by natural key,
and the site must take new pages, collections and users afterwards. An
attempt that fails must leave its target as it was.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import BOUNDED, IN_CI, missing_reason

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "tests" / "thirdparty"
VENV = ROOT / ".venv-wagtail"
OLD = LAB / "requirements-wagtail7.txt"
NEW = LAB / "requirements-wagtail8.txt"
# Under CI, PostgreSQL only (the replay's scratch databases and the pages' tree
# are the same code on SQLite); DBTOOLS_FULL_MATRIX=1 runs both.
BACKENDS = ("postgresql",) if BOUNDED else ("postgresql", "sqlite")
TIMINGS: dict[str, float] = {}


def edit(tag: str, drop_permission: bool = False) -> str:
    """A script for `manage.py shell`: what an editor adds to the site."""
    script = f"""
from django.contrib.auth.models import Permission, User
from wagtail.models import Collection, Page
from home.models import SectionPage
User.objects.create_user("{tag}", "{tag}@example.com", "pw")
Collection.get_first_root_node().add_child(name="{tag} collection")
home = Page.objects.get(depth=2).specific
home.add_child(instance=SectionPage(title="{tag} page", slug="{tag}")).save_revision().publish()
"""
    if drop_permission:
        # A permission that wagtailcore's data migration 0086 makes again (it
        # calls create_permissions()): a replay that let it write to the
        # target shows there.
        script += (
            'Permission.objects.get(content_type__app_label="wagtailcore", codename="view_locale")'
            ".delete()\n"
        )
    return script


class timed:
    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        TIMINGS[self.label] = TIMINGS.get(self.label, 0) + time.monotonic() - self.start


def run(argv: list[str | Path]) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        command = " ".join(str(a) for a in argv)
        raise AssertionError(
            f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return done.stdout


def requirement_lines(text: str) -> set[str]:
    return {
        line.strip().lower().replace("_", "-")
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    }


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"

    def pip(self, *args: str | Path) -> str:
        return run([self.python, "-m", "pip", "--disable-pip-version-check", *args])

    def installed(self) -> set[str]:
        return requirement_lines(self.pip("freeze", "--exclude-editable"))

    def install_exactly(self, requirements: Path) -> None:
        """The pinned set, and nothing else but this checkout (editable)."""
        wanted = requirement_lines(requirements.read_text())
        if self.installed() != wanted:
            self.pip("install", "--quiet", "-r", requirements)
            names = {line.split("==")[0] for line in wanted}
            extra = [p.split("==")[0] for p in self.installed() if p.split("==")[0] not in names]
            if extra:
                self.pip("uninstall", "--quiet", "--yes", *extra)
        assert self.installed() == wanted


@pytest.fixture(scope="session")
def wagtail_venv() -> Venv:
    venv = Venv(VENV)
    stamp = VENV / ".dbtools-wagtail-stamp"
    wanted = "\n".join(
        [sys.version, OLD.read_text(), NEW.read_text(), (ROOT / "pyproject.toml").read_text()]
    )
    with timed("virtualenv"):
        reuse = not IN_CI and stamp.exists() and stamp.read_text() == wanted
        if not reuse:
            shutil.rmtree(VENV, ignore_errors=True)
            run([sys.executable, "-m", "venv", VENV])
            venv.pip("install", "--quiet", "-r", OLD, "-e", ROOT)
            stamp.write_text(wanted)
        venv.install_exactly(OLD)  # a reused one was left at Wagtail 8 by the last run
    return venv


# One backend's databases ------------------------------------------------------


@dataclass
class Lab:
    backend: str
    venv: Venv
    folder: Path
    prefix: str
    original: str = ""
    reference: str = ""
    databases: list[str] = field(default_factory=list)

    def env(self, database: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
        }
        env.update(
            WAGTAILLAB_DIR=str(self.folder),
            WAGTAILLAB_DB_ENGINE=self.backend,
            WAGTAILLAB_DB_NAME=database,
        )
        if self.backend == "postgresql":
            server = settings.DATABASES["postgresql"]
            env.update(
                WAGTAILLAB_DB_HOST=server.get("HOST") or "127.0.0.1",
                WAGTAILLAB_DB_PORT=str(server.get("PORT") or 5432),
                WAGTAILLAB_DB_USER=server.get("USER") or "postgres",
                WAGTAILLAB_DB_PASSWORD=server.get("PASSWORD") or "",
            )
        return env

    def manage(self, database: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv.python), "manage.py", *args],
            cwd=LAB,
            env=self.env(database),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def check_manage(self, database: str, *args: str) -> str:
        done = self.manage(database, *args)
        assert done.returncode == 0, (
            f"manage.py {' '.join(args)} on {database} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
        return done.stdout

    def create(self, suffix: str, template: str | None = None) -> str:
        """A new empty database, or a copy of `template`."""
        if self.backend == "sqlite":
            name = str(self.folder / f"{suffix}.sqlite3")
            self.databases.append(name)
            if template:
                shutil.copyfile(template, name)
            return name
        name = f"{self.prefix}_{suffix}"
        self.databases.append(name)
        pg_admin(
            f'DROP DATABASE IF EXISTS "{name}"',
            f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""),
        )
        return name

    def drop(self, name: str) -> None:
        if self.backend == "sqlite":
            for path in (name, f"{name}-wal", f"{name}-shm", f"{name}-journal"):
                Path(path).unlink(missing_ok=True)
        else:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def tables(self, name: str) -> dict[str, Any]:
        if self.backend == "sqlite":
            return sqlite_tables(name)
        return pg_tables(name)


def pg_connect(dbname: str = "postgres") -> Any:
    import psycopg

    server = settings.DATABASES["postgresql"]
    return psycopg.connect(
        host=server.get("HOST") or "127.0.0.1",
        port=server.get("PORT") or 5432,
        user=server.get("USER") or "postgres",
        password=server.get("PASSWORD") or None,
        dbname=dbname,
        autocommit=True,
    )


def pg_admin(*statements: str) -> None:
    with pg_connect() as connection:
        for statement in statements:
            connection.execute(statement)


@pytest.fixture(scope="module")
def labs(
    request: pytest.FixtureRequest,
    wagtail_venv: Venv,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Lab]]:
    """Per backend: the original site seeded and backed up under Wagtail 7.0.3,
    then (Wagtail upgraded to 8.0.1) the reference: the original migrated.
    Only for the backends of the tests selected (the upgrade happens once)."""
    run_id = re.sub(r"[^a-z0-9_]", "_", os.environ.get("DBTOOLS_TESTS_RUN", "").lower())
    prefix = f"wagtaillab_{run_id or os.getpid()}_{secrets.token_hex(2)}"
    selected = {
        item.callspec.params.get("lab")
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    labs = {}
    for backend in BACKENDS:
        if backend not in selected:
            continue
        if backend == "postgresql" and missing_reason("postgresql") and not IN_CI:
            continue  # its tests skip with the reason
        folder = tmp_path_factory.mktemp(f"wagtaillab-{backend}")
        labs[backend] = Lab(backend, wagtail_venv, folder, prefix)
    try:
        for lab in labs.values():
            with timed(f"{lab.backend}: original: migrate + seed + backupdb (Wagtail 7.0.3)"):
                lab.original = lab.create("original")
                lab.check_manage(lab.original, "migrate", "--no-input", "-v", "0")
                lab.check_manage(lab.original, "seedwagtail")
                lab.check_manage(lab.original, "backupdb")
        with timed("upgrade to Wagtail 8.0.1"):
            wagtail_venv.install_exactly(NEW)
        for lab in labs.values():
            with timed(f"{lab.backend}: reference: migrate a copy of the original"):
                lab.reference = lab.create("reference", template=lab.original)
                lab.check_manage(lab.reference, "migrate", "--no-input", "-v", "0")
        yield labs
    finally:
        for lab in labs.values():
            for name in lab.databases:
                lab.drop(name)
        report = "\n".join(f"  {seconds:6.1f}s  {label}" for label, seconds in TIMINGS.items())
        print(f"\nWagtail lab timings:\n{report}")


@pytest.fixture(params=BACKENDS)
def lab(request: pytest.FixtureRequest, labs: dict[str, Lab]) -> Lab:
    if request.param not in labs:
        pytest.skip(missing_reason(request.param))
    return labs[request.param]


# What is compared ------------------------------------------------------------

# Columns left out: ids that a fresh database may number differently (the
# rows are compared by natural key instead) and the time a migration ran.
DROPPED = {
    "django_content_type": ("id",),
    "auth_permission": ("id", "content_type_id"),
    "django_migrations": ("id", "applied"),
}


def pg_tables(dbname: str) -> dict[str, Any]:
    with pg_connect(dbname) as connection:
        tables = [
            r[0]
            for r in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        references = [
            (table, column, target)
            for table, column, target in connection.execute(
                """SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text
                   FROM pg_constraint c
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                   WHERE c.contype = 'f'"""
            )
        ]

        def rows(table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            return [d.name for d in cursor.description], cursor.fetchall()

        return comparable_tables(tables, references, rows)


FTS5_SHADOWS = ("data", "idx", "content", "docsize", "config")


def sqlite_tables(path: str) -> dict[str, Any]:
    if not Path(path).exists():
        return {}
    connection = sqlite3.connect(path)
    try:
        found = dict(
            connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )
        # A full-text index (Wagtail's search on SQLite) is compared by what it
        # holds; its shadow tables' blobs depend on the order rows went in.
        virtual = {t for t, sql in found.items() if sql.upper().startswith("CREATE VIRTUAL")}
        shadows = {f"{v}_{s}" for v in virtual for s in FTS5_SHADOWS}
        tables = [t for t in found if t not in shadows]
        references = [
            (table, fk[3], fk[2])
            for table in tables
            for fk in connection.execute(f'PRAGMA foreign_key_list("{table}")')
        ]

        def rows(table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            rowid = "rowid, " if table in virtual else ""
            cursor = connection.execute(f'SELECT {rowid}* FROM "{table}"')
            return [d[0] for d in cursor.description], cursor.fetchall()

        return comparable_tables(tables, references, rows)
    finally:
        connection.close()


def comparable_tables(tables, references, rows) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Every table's rows as a set of tuples, content types and permissions
    (and every foreign key column pointing at them) by natural key."""
    natural: dict[str, dict[Any, str]] = {}
    if "django_content_type" in tables and "auth_permission" in tables:
        columns, content_types = rows("django_content_type")
        by_id = {
            r[columns.index("id")]: f"{r[columns.index('app_label')]}.{r[columns.index('model')]}"
            for r in content_types
        }
        columns, permissions = rows("auth_permission")
        natural = {
            "django_content_type": by_id,
            "auth_permission": {
                r[columns.index("id")]: (
                    f"{by_id[r[columns.index('content_type_id')]]}.{r[columns.index('codename')]}"
                )
                for r in permissions
            },
        }
    pointing = {(t, c): target for t, c, target in references if target in natural}
    result: dict[str, Any] = {}
    for table in tables:
        columns, found = rows(table)
        keep = [c for c in columns if c not in DROPPED.get(table, ())]
        key = natural.get(table)
        header = (("natural key",) if key is not None else ()) + tuple(keep)
        mapped_rows = set()
        for row in found:
            values = dict(zip(columns, row, strict=True))
            mapped = [key[values["id"]]] if key is not None else []
            for column in keep:
                value = values[column]
                target = pointing.get((table, column))
                if target and value is not None:
                    value = natural[target].get(value, f"<dangling {value}>")
                mapped.append(comparable(value))
            mapped_rows.add(tuple(mapped))
        result[table] = (header, mapped_rows)
    return result


def comparable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def differences(
    expected: dict[str, Any],
    actual: dict[str, Any],
    names: tuple[str, str] = ("the reference", "restored"),
    limit: int = 8,
) -> list[str]:
    """One block per table that differs: its rows only in one of the two."""
    was, now = names
    if not expected and actual:
        rows = sum(len(r) for _, r in actual.values())
        return [f"no tables in {was}; {now}: {len(actual)} tables, {rows} rows"]
    out = []
    for table in sorted(expected.keys() | actual.keys()):
        if table not in actual:
            out.append(f"{table}: missing ({was}: {len(expected[table][1])} rows)")
            continue
        if table not in expected:
            out.append(f"{table}: not in {was} ({now}: {len(actual[table][1])} rows)")
            continue
        header, rows = expected[table]
        other_header, other_rows = actual[table]
        if header != other_header:
            out.append(f"{table}: columns differ: {was} {header}, {now} {other_header}")
            continue
        if rows == other_rows:
            continue
        lines = [f"{table}: {len(rows)} rows in {was}, {len(other_rows)} {now}; columns {header}"]
        for label, only in (
            (f"only in {was}", rows - other_rows),
            (f"only {now}", other_rows - rows),
        ):
            for row in sorted(only, key=repr)[:limit]:
                lines.append(f"    {label}: {short(row)}")
            if len(only) > limit:
                lines.append(f"    ... and {len(only) - limit} more {label}")
        out.append("\n".join(lines))
    return out


def short(row: tuple[Any, ...]) -> str:
    text = repr(row)
    return text if len(text) <= 600 else text[:600] + "..."


def outcome(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


def restore(
    lab: Lab, target: str, flags: tuple[str, ...], before: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Run restoredb; if it fails, the target must be exactly as it was."""
    role = Path(target).stem if lab.backend == "sqlite" else target.rsplit("_", 1)[-1]
    with timed(f"{lab.backend}: {role}: restoredb {' '.join(flags)}"):
        done = lab.manage(target, "restoredb", *flags)
    if done.returncode != 0:
        changed = differences(before, lab.tables(target), ("the target before", "after"))
        assert not changed, (
            f"restoredb {' '.join(flags)} failed AND changed its target:\n{outcome(done)}\n"
            "changed tables:\n" + "\n".join(changed)
        )
    return done


def assert_restored(lab: Lab, target: str, done: subprocess.CompletedProcess[str]) -> None:
    """As `migrate` made the original, and the site takes new content."""
    assert done.returncode == 0, f"restoredb failed (the target is as it was):\n{outcome(done)}"
    found = differences(lab.tables(lab.reference), lab.tables(target))
    assert not found, (
        f"restoredb succeeded, but {len(found)} tables differ from the reference:\n"
        + "\n".join(found)
        + f"\n\nrestoredb said:\n{outcome(done)}"
    )
    lab.check_manage(target, "shell", "-c", edit("afterwards"))


# The three paths ---------------------------------------------------------------


def test_into_an_empty_database(lab: Lab) -> None:
    """(a) No flag: dbtools sees the empty database and replays into it."""
    target = lab.create("empty")
    try:
        done = restore(lab, target, ("--no-input",), {})
        assert_restored(lab, target, done)
    finally:
        lab.drop(target)


def test_replace_replay_into_a_migrated_database_with_other_content(lab: Lab) -> None:
    """(b) --replace --replay over a migrated database that holds other rows."""
    target = lab.create("replace")
    try:
        lab.check_manage(target, "migrate", "--no-input", "-v", "0")
        lab.check_manage(target, "shell", "-c", edit("stale", drop_permission=True))
        before = lab.tables(target)
        done = restore(lab, target, ("--replace", "--replay", "--no-input"), before)
        assert_restored(lab, target, done)
    finally:
        lab.drop(target)


OVERLAP = (
    "Already in this database under the same primary key, so the merge skips the backup's "
    "version of these rows (rows a migration made have such keys, often):"
)


def test_merge_into_a_freshly_migrated_database(lab: Lab) -> None:
    """(c) A plain merge into a database holding only what its migrations made
    keeps the migrations' rows under the backup's keys (Wagtail's root and home
    pages): only a replay can tell them from a user's. The pre-flight report
    names them, and every table left unlike the reference is one it named."""
    target = lab.create("merge")
    try:
        lab.check_manage(target, "migrate", "--no-input", "-v", "0")
        before = lab.tables(target)
        done = restore(lab, target, ("--no-input",), before)
        assert done.returncode == 0, outcome(done)
        lines = done.stdout.splitlines()
        assert OVERLAP in lines, outcome(done)
        named = set()
        for line in lines[lines.index(OVERLAP) + 1 :]:
            if not line.startswith("  ") or line.startswith("  To take"):
                break
            label = line.strip().split(":")[0]
            named.add(label.lower().replace(".", "_"))
        assert {"wagtailcore_page", "wagtailcore_site"} <= named, outcome(done)
        differing = {
            d.split(":")[0] for d in differences(lab.tables(lab.reference), lab.tables(target))
        }
        assert differing and differing <= named, (differing - named, outcome(done))
    finally:
        lab.drop(target)


def test_merge_replay_into_a_freshly_migrated_database(lab: Lab) -> None:
    """(c) with --replay: the replay can tell the migrations' own rows from a user's."""
    target = lab.create("mergereplay")
    try:
        lab.check_manage(target, "migrate", "--no-input", "-v", "0")
        before = lab.tables(target)
        done = restore(lab, target, ("--replay", "--no-input"), before)
        assert_restored(lab, target, done)
    finally:
        lab.drop(target)
