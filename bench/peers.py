#!/usr/bin/env python
"""Every figure issue 11 asks for, in one command, one phase after another.

    .venv/bin/python bench/peers.py --rows 1000000 --rounds 3

Phases (--phases, default all of them):

postgresql  Seeds one PostgreSQL database with `seedshop`, then per round, in
            an order that changes every round: backupdb (--jobs 1, the
            default 2, and 3) and `pg_dump --data-only -Fc` of the shop
            tables; restoredb (a merge into empty tables, and one into
            tables that lost every other row), restoredb --replace (into
            full ones) and `pg_restore --data-only --single-transaction`
            (PostgreSQL's atomic, foreign-key-checked restore: the fair peer)
            into one migrated database whose shop tables are emptied with
            TRUNCATE ... CASCADE before each empty restore. Before each tool
            it waits for the server's autovacuum workers (the tool before may
            have left them a million rows to analyze).
            Like for like: plain backupdb --jobs 1 against `pg_dump -Fc -Z0`,
            the default (2 connections) against `pg_dump -Fd -j 2 -Z0`,
            `backupdb --compress gzip` against `pg_dump -Fc`, restores against
            pg_restore of the compressed dump and of the -Z0 one. Then the
            server's own cost of backupdb's JSON lines against COPY's text
            (both written by the server to /dev/null): the floor on one
            connection; and, as a peer in the rounds, those same JSON lines
            delivered to psql (`COPY (…) TO STDOUT` of every shop table in
            one repeatable-read transaction, psql writing them to
            /dev/null): the floor as a client receives it, which plain
            backupdb --jobs 1 is held to within 1.2x.
sqlite,     Per backend: seeds --rows rows, then, alternating --rounds times,
mariadb     backupdb against the database's own dump of the shop tables
            (`sqlite3` `.mode insert`; `mariadb-dump --single-transaction
            --no-create-info`) and restoredb against that dump imported into
            a freshly migrated database: by `sqlite3` in one transaction with
            foreign keys on; by `mariadb` in one transaction with foreign-key
            and unique checks on (the fair peer: atomic and checked, as
            restoredb is), and as the dump comes (checks off, not atomic).
            --django-peers adds dumpdata and loaddata, once (loaddata takes
            about 15 minutes at 1,000,000 rows).
scaling     backupdb and restoredb (into a freshly migrated database) at
            each of --scale-rows on each of --scale-backends: seconds,
            microseconds a row, peak memory.

Each phase starts by timing a fixed CPU workload and reading the load
average, because this kind of machine's speed drifts within minutes: only
ratios from one phase are compared. Every tool runs as its own process; its
peak memory is that process's maximum resident set. "client CPU" is the
tool's own CPU time, "machine CPU" every process's (the database server's
included) while it ran.

Needs a PostgreSQL server the current user can create databases on
(BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres) and
a MariaDB one (BENCH_MARIADB_URL, default mysql://root:@127.0.0.1:3306/test).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from run import PYTHON, ROOT, Measure, fresh_database, psql, run  # bench/run.py

MANAGE = [PYTHON, "manage.py"]


def calibration() -> float:
    """Seconds for a fixed pure-Python workload: the machine's speed right now."""
    started = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i
    return time.perf_counter() - started


def phase(title: str) -> None:
    speeds = [calibration() for _ in range(3)]
    print(
        f"\n## {title}\n\ncalibration {statistics.median(speeds):.3f} s "
        f"[{min(speeds):.3f}-{max(speeds):.3f}], load {os.getloadavg()[0]:.2f}\n",
        flush=True,
    )


def settled(url: str, most: float = 120) -> None:
    """Wait until no autovacuum worker runs: the tool before may have left
    a million new rows for it to analyze, on the same two cores."""
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["psql", "-At", "-d", url, "-c",
             "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        if done.stdout.strip() == "0":
            return
        time.sleep(1)


# Every other row of each shop table deleted, foreign keys not enforced (the
# bench runs as a superuser): a database that lost half its rows, for a merge.
HALVE_SQL = """
BEGIN;
SET LOCAL session_replication_role = replica;
DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables
           WHERE schemaname = 'public' AND tablename LIKE 'shop\\_%' LOOP
    EXECUTE format('DELETE FROM %I WHERE ctid IN (SELECT ctid FROM (SELECT ctid, '
                   'row_number() OVER () AS n FROM %I) s WHERE n %% 2 = 0)', t, t);
  END LOOP;
END $$;
COMMIT;
"""


def shop_tables(url: str) -> str:
    done = subprocess.run(
        ["psql", "-At", "-d", url, "-c",
         "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
         "WHERE schemaname = 'public' AND tablename LIKE 'shop\\_%'"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def backed_up_rows(measure: Measure) -> int:
    found = re.search(r"Backed up ([\d,]+) rows", measure.stdout)
    return int(found.group(1).replace(",", "")) if found else 0


def table_seconds(measure: Measure) -> dict[str, float]:
    """backupdb's per-table lines: label, rows, seconds."""
    return {
        label: float(seconds)
        for label, seconds in re.findall(
            r"^  (\S+)\s+[\d,]+ rows\s+([\d.]+)s$", measure.stdout, re.M
        )
    }


def median(runs: list[Measure]) -> float:
    return statistics.median(m.seconds for m in runs)


def against(measures: dict[str, list[Measure]], ours: str, theirs: str) -> str:
    """The ratio of the medians, and the worst round's: a target is met
    reproducibly only when every round meets it (alternate() runs the two
    tools in the same round, a few seconds apart)."""
    rounds = [a.seconds / b.seconds for a, b in zip(measures[ours], measures[theirs], strict=True)]
    return (
        f"{median(measures[ours]) / median(measures[theirs]):.2f}x "
        f"(every round: {', '.join(f'{r:.2f}' for r in rounds)}) against"
    )


# What the server alone spends on the lines backupdb asks it for (backends/pg_reads.py's
# query), against COPY's own text, each written by the server to /dev/null; then
# whether the client could turn COPY's output into JSON lines for less than the
# server's JSON costs, with the compiled code at hand (psycopg's C loaders, orjson):
# "typed" builds each row's values from binary COPY; "untyped" only splits COPY's
# text, every value left a string (not the codec's output: a lower bound).
JSON_FLOOR = """
import resource, time
import orjson
from django.db import connection
from dbtools.backends.pg_reads import rows_sql
from dbtools.graph import plan_tables
def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime
spent = {"copy": 0.0, "json": 0.0, "typed": 0.0, "untyped": 0.0}
tables = plan_tables("default", only=["shop"]).tables
with connection.cursor() as cursor:
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.execute("SET jit = off")
    for table in tables:
        for kind, query in (("copy", connection.ops.quote_name(table.db_table)),
                            ("json", "(" + rows_sql(table, connection) + ")")):
            started = time.perf_counter()
            cursor.execute(f"COPY {query} TO '/dev/null'")
            spent[kind] += time.perf_counter() - started
raw = connection.connection
for table in tables:
    names = [f.name for f in table.fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in table.fields)
    query = f"SELECT {columns} FROM {connection.ops.quote_name(table.db_table)}"
    with raw.cursor() as cursor:
        cursor.execute(query + " LIMIT 0")
        types = [d.type_code for d in cursor.description]
        started = cpu()
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in copy.rows():
                orjson.dumps(dict(zip(names, row)), default=str)
        spent["typed"] += cpu() - started
        started = cpu()
        with cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
            for block in copy:
                for line in bytes(block).split(b"\\n"):
                    if line:
                        orjson.dumps(dict(zip(names, line.decode().split("\\t"))))
        spent["untyped"] += cpu() - started
print(" ".join(f"{spent[k]:.2f}" for k in ("copy", "json", "typed", "untyped")))
"""


# The same query per shop table as backupdb's (backends/pg_reads.py), as one psql
# script: one transaction, as backupdb's snapshot is.
JSON_LINES_SCRIPT = """
from django.db import connection
from dbtools.backends.pg_reads import rows_sql
from dbtools.graph import plan_tables
print("SET TIME ZONE 'UTC';")
print("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;")
for table in plan_tables("default", only=["shop"]).tables:
    print(f"COPY ({rows_sql(table, connection)}) TO STDOUT;")
print("COMMIT;")
"""


def json_lines_script(source: dict[str, str], script: Path) -> Path:
    done = subprocess.run(
        [*MANAGE, "shell", "-v", "0", "-c", JSON_LINES_SCRIPT], env=source, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    script.write_text(done.stdout)
    return script


def json_floor(source: dict[str, str]) -> None:
    done = subprocess.run(
        [*MANAGE, "shell", "-v", "0", "-c", JSON_FLOOR], env=source, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    plain, as_json, typed, untyped = (float(n) for n in done.stdout.split())
    print(
        f"- the server alone, every shop table to /dev/null: COPY's text {plain:.2f} s, "
        f"backupdb's JSON lines {as_json:.2f} s ({as_json / plain:.2f}x): the floor of "
        "backupdb against pg_dump -Z0 on one connection"
    )
    print(
        f"- COPY's output made into JSON lines by the client instead (client CPU): "
        f"typed, psycopg's C loaders and orjson {typed:.2f} s; untyped, text split and "
        f"orjson, every value a string {untyped:.2f} s; against the server's "
        f"{as_json - plain:.2f} s of JSON work"
    )


def table(measures: dict[str, list[Measure]]) -> None:
    print("| tool | seconds (median) | runs | peak MB | client CPU s | machine CPU s |")
    print("|---|---:|---|---:|---:|---:|")
    for name, runs in measures.items():
        seconds = ", ".join(f"{m.seconds:.1f}" for m in runs)
        print(
            f"| {name} | {median(runs):.1f} | {seconds} | {max(m.peak_mb for m in runs):.0f} | "
            f"{statistics.median(m.client_cpu for m in runs):.1f} | "
            f"{statistics.median(m.machine_cpu for m in runs):.1f} |"
        )
    print(flush=True)


def alternate(tools: dict[str, Callable[[], Measure]], rounds: int) -> dict[str, list[Measure]]:
    measures: dict[str, list[Measure]] = {name: [] for name in tools}
    for round_no in range(rounds):
        names = list(tools)
        names = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in names:
            measures[name].append(tools[name]())
        print(f"  round {round_no + 1} of {rounds} done", flush=True)
    return measures


# Databases on each backend ---------------------------------------------------------


class Backends:
    """Creating, migrating and dropping benchmark databases on each backend."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.postgres = os.environ.get(
            "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        )
        self.mariadb = os.environ.get("BENCH_MARIADB_URL", "mysql://root:@127.0.0.1:3306/test")
        self.made: list[tuple[str, str]] = []

    def url(self, backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.work / (name + '.sqlite3')}"
        base = self.postgres if backend == "postgresql" else self.mariadb
        return urlunsplit(urlsplit(base)._replace(path="/" + name))

    def mariadb_sql(self, sql: str) -> None:
        parts = urlsplit(self.mariadb)
        argv = ["mariadb", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
        argv += ["-u", parts.username or "root", "-e", sql]
        if parts.password:
            argv.insert(1, f"-p{parts.password}")
        subprocess.run(argv, check=True, capture_output=True)

    def fresh(self, backend: str, name: str) -> dict[str, str]:
        """A new, migrated, empty database: the environment that points at it."""
        self.drop(backend, name)
        self.made.append((backend, name))
        if backend == "postgresql":
            return fresh_database(self.postgres, name, self.env)
        if backend == "mariadb":
            self.mariadb_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        db_env = {**self.env, "DATABASE_URL": self.url(backend, name)}
        run([*MANAGE, "migrate", "--no-input", "-v", "0"], db_env)
        return db_env

    def drop(self, backend: str, name: str) -> None:
        if backend == "postgresql":
            psql(self.postgres, f"DROP DATABASE IF EXISTS {name}")
        elif backend == "mariadb":
            self.mariadb_sql(f"DROP DATABASE IF EXISTS {name}")
        else:
            (self.work / (name + ".sqlite3")).unlink(missing_ok=True)

    def drop_all(self) -> None:
        for name in ("dbtools_peers", "dbtools_peers_restore"):
            psql(self.postgres, f"DROP DATABASE IF EXISTS {name}")
        for backend, name in self.made:
            self.drop(backend, name)


def started(script: str) -> Backends:
    """A work folder and the environment the tools run in; the run's first line
    names the script, its arguments and the commit measured."""
    work = Path(tempfile.mkdtemp(prefix=f"dbtools-{script}-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["DBTOOLS_BACKUP_DIR"] = str(work / "backups")
    # pip compiles an installed app's bytecode; a checkout on a machine that
    # sets PYTHONDONTWRITEBYTECODE would compile the project's modules again in
    # every timed process, a start-up cost no installed project pays.
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", "dbtools", "shop", "config", "bench"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"# bench/{script}.py {' '.join(sys.argv[1:])} at {commit.stdout.strip()}, "
        f"{os.cpu_count()} cores"
    )
    return Backends(work, env)


# Phases -----------------------------------------------------------------------------


def postgresql_phase(dbs: Backends, rows: int, rounds: int) -> None:
    work = dbs.work
    print(f"Seeding {rows:,} rows on PostgreSQL ...", flush=True)
    source = fresh_database(dbs.postgres, "dbtools_peers", dbs.env)
    run([*MANAGE, "seedshop", "--rows", str(rows)], source)
    psql(source["DATABASE_URL"], "VACUUM ANALYZE")
    backup, dump = work / "shop.json", work / "shop.pgc"
    seeded = backed_up_rows(
        run([*MANAGE, "backupdb", "--only", "shop", "--output", str(backup)], source)
    )
    plain_dump = work / "shop-z0.pgc"
    for dump_file, level in ((dump, []), (plain_dump, ["-Z0"])):
        run(["pg_dump", "--data-only", "-Fc", *level, "-t", "shop_*", "-f", str(dump_file),
             source["DATABASE_URL"]], dbs.env)  # fmt: skip
    target = fresh_database(dbs.postgres, "dbtools_peers_restore", dbs.env)
    tables = shop_tables(target["DATABASE_URL"])
    restoredb = [*MANAGE, "restoredb", "--file", str(backup), "--no-input"]

    def emptied() -> dict[str, str]:
        psql(target["DATABASE_URL"], f"TRUNCATE {tables} CASCADE")  # admin log: empty here
        return target

    def backupdb(*extra: str) -> Callable[[], Measure]:
        out = work / ("out.json.gz" if "gzip" in extra else "out.json")
        argv = [*MANAGE, "backupdb", "--only", "shop", "--output", str(out), *extra]
        return lambda: run(argv, source)

    def prepared(
        make_ready: Callable[[], object], tool: Callable[[], Measure]
    ) -> Callable[[], Measure]:
        def measured() -> Measure:
            make_ready()
            settled(dbs.postgres)
            return tool()

        return measured

    def half_full() -> None:
        run(restoredb, emptied())
        psql(target["DATABASE_URL"], HALVE_SQL)
        psql(target["DATABASE_URL"], "VACUUM ANALYZE")

    def nothing() -> None:
        return None

    def pg_dump(*options: str) -> Callable[[], Measure]:
        out = work / "out.pgdump"

        def dumped() -> Measure:
            shutil.rmtree(out, ignore_errors=True)  # -Fd wants a new directory
            out.unlink(missing_ok=True)
            argv = ["pg_dump", "--data-only", *options, "-t", "shop_*", "-f", str(out)]
            return run([*argv, source["DATABASE_URL"]], dbs.env)

        return dumped

    def pg_restore(dump_file: Path) -> Callable[[], Measure]:
        argv = ["pg_restore", "--data-only", "--single-transaction", "-d", target["DATABASE_URL"]]
        return lambda: run([*argv, str(dump_file)], dbs.env)

    script = json_lines_script(source, work / "json-lines.sql")
    delivered = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", os.devnull, "-f", str(script)]
    tools = {
        "psql: backupdb's JSON lines, COPY TO STDOUT": prepared(
            nothing, lambda: run([*delivered, source["DATABASE_URL"]], dbs.env)
        ),
        "backupdb": prepared(nothing, backupdb()),
        "backupdb --jobs 1": prepared(nothing, backupdb("--jobs", "1")),
        "backupdb --jobs 3": prepared(nothing, backupdb("--jobs", "3")),
        "backupdb --compress gzip": prepared(nothing, backupdb("--compress", "gzip")),
        "pg_dump --data-only -Fc": prepared(nothing, pg_dump("-Fc")),
        "pg_dump --data-only -Fc -Z0": prepared(nothing, pg_dump("-Fc", "-Z0")),
        "pg_dump --data-only -Fd -j 2": prepared(nothing, pg_dump("-Fd", "-j", "2")),
        "pg_dump --data-only -Fd -j 2 -Z0": prepared(nothing, pg_dump("-Fd", "-j", "2", "-Z0")),
        "restoredb (merge into empty tables)": prepared(emptied, lambda: run(restoredb, target)),
        "restoredb (merge into half-full tables)": prepared(
            half_full, lambda: run(restoredb, target)
        ),
        "restoredb --replace (full tables)": prepared(
            lambda: run(restoredb, emptied()), lambda: run([*restoredb, "--replace"], target)
        ),
        "pg_restore --data-only --single-transaction": prepared(emptied, pg_restore(dump)),
        "pg_restore --data-only --single-transaction (-Z0 dump)": prepared(
            emptied, pg_restore(plain_dump)
        ),
    }
    phase(f"PostgreSQL against pg_dump and pg_restore: {seeded:,} rows, {rounds} rounds")
    measures = alternate(tools, rounds)
    table(measures)
    m = {name: median(runs) for name, runs in measures.items()}
    for ours, theirs, target_ratio in (
        ("backupdb --jobs 1", "psql: backupdb's JSON lines, COPY TO STDOUT", 1.2),
        ("backupdb --jobs 1", "pg_dump --data-only -Fc -Z0", 1.0),
        ("backupdb", "pg_dump --data-only -Fd -j 2 -Z0", 1.0),
        ("backupdb --compress gzip", "pg_dump --data-only -Fc", 0.8),
        ("backupdb", "pg_dump --data-only -Fc", 0.8),
        ("restoredb (merge into empty tables)", "pg_restore --data-only --single-transaction", 0.8),
        (
            "restoredb (merge into empty tables)",
            "pg_restore --data-only --single-transaction (-Z0 dump)",
            0.8,
        ),
        ("restoredb --replace (full tables)", "pg_restore --data-only --single-transaction", 0.8),
        (
            "restoredb (merge into half-full tables)",
            "pg_restore --data-only --single-transaction",
            1.0,
        ),
    ):
        print(f"- {ours}: {against(measures, ours, theirs)} {theirs} (target {target_ratio}x)")
    json_floor(source)
    print(
        f"- backupdb --jobs 2 (the default): {m['backupdb --jobs 1'] / m['backupdb']:.2f}x as fast as "
        f"--jobs 1; --jobs 3: {m['backupdb --jobs 1'] / m['backupdb --jobs 3']:.2f}x"
    )
    alone = measures["backupdb --jobs 1"]
    client = statistics.median(r.client_cpu for r in alone)
    machine = statistics.median(r.machine_cpu for r in alone)
    spent = table_seconds(alone[len(alone) // 2])
    biggest = max(spent, key=lambda label: spent[label]) if spent else "-"
    share = spent[biggest] / sum(spent.values()) if spent else 0.0
    print(
        f"- backupdb --jobs 1: {median(alone):.1f} s wall, {client:.1f} s of its own CPU, "
        f"{machine - client:.1f} s of the server's; the biggest table ({biggest}) is "
        f"{share:.0%} of the reading time"
    )
    print(flush=True)


SHOP_TABLES = """
from dbtools.graph import plan_tables
print(" ".join(table.db_table for table in plan_tables("default", only=["shop"]).tables))
"""


def native_tools(
    dbs: Backends, backend: str, source: dict[str, str], tables: list[str]
) -> tuple[dict[str, Callable[[], Measure]], dict[str, Callable[[], Measure]]]:
    """The backend's own dump and imports of the shop tables (in foreign-key
    order, so that an import with its checks on can take them): the backup
    tool, and the restores, each into a freshly migrated database."""
    work = dbs.work
    dump = work / f"{backend}-native.sql"
    if backend == "sqlite":
        src = str(dbs.work / "dbtools_peers_src.sqlite3")
        selects = [c for t in tables for c in (f".mode insert {t}", f'SELECT * FROM "{t}";')]
        dump_argv = ["sqlite3", "-batch", src, f".output {dump}", *selects]
        run(dump_argv, dbs.env)

        def imported() -> Measure:
            dst = dbs.fresh(backend, "dbtools_peers_dst")["DATABASE_URL"].removeprefix("sqlite:///")
            # Django's SQLite foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT.
            argv = ["sqlite3", "-batch", "-bail", dst, "PRAGMA foreign_keys = ON;", "BEGIN;"]
            return run([*argv, f".read {dump}", "COMMIT;"], dbs.env)

        return (
            {"sqlite3 .mode insert": lambda: run(dump_argv, dbs.env)},
            {"sqlite3 .read, one transaction, foreign keys on": imported},
        )
    parts = urlsplit(dbs.mariadb)
    login = ["-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
    login += ["-u", parts.username or "root"] + ([f"-p{parts.password}"] if parts.password else [])
    base = ["mariadb-dump", *login, "--single-transaction", "--no-create-info"]
    dump_argv = [*base, "--result-file", str(dump), "dbtools_peers_src", *tables]
    run(dump_argv, dbs.env)
    # The fair peer: one transaction, foreign-key and unique checks on. The
    # dump turns both off and takes table locks (whose UNLOCK commits).
    atomic = work / "mariadb-native-atomic.sql"
    raw_argv = [*base, "--skip-add-locks", "--skip-disable-keys", "--result-file"]
    run([*raw_argv, str(atomic) + ".raw", "dbtools_peers_src", *tables], dbs.env)
    with open(str(atomic) + ".raw") as raw, open(atomic, "w") as out:
        out.write("SET autocommit = 0;\nSET foreign_key_checks = 1;\nSET unique_checks = 1;\n")
        out.writelines(
            line for line in raw if "FOREIGN_KEY_CHECKS" not in line and "UNIQUE_CHECKS" not in line
        )
        out.write("COMMIT;\n")
    Path(str(atomic) + ".raw").unlink()

    def imported(script: Path) -> Callable[[], Measure]:
        def measured() -> Measure:
            dbs.fresh(backend, "dbtools_peers_dst")
            return run(["mariadb", *login, "dbtools_peers_dst", "-e", f"source {script}"], dbs.env)

        return measured

    return (
        {"mariadb-dump --single-transaction": lambda: run(dump_argv, dbs.env)},
        {
            "mariadb < dump, one transaction, checks on": imported(atomic),
            "mariadb < dump (its defaults: checks off, not atomic)": imported(dump),
        },
    )


def native_phase(dbs: Backends, backend: str, rows: int, rounds: int, django_peers: bool) -> None:
    work = dbs.work
    print(f"Seeding {rows:,} rows on {backend} ...", flush=True)
    source = dbs.fresh(backend, "dbtools_peers_src")
    run([*MANAGE, "seedshop", "--rows", str(rows)], source)
    backup, fixture = work / f"{backend}.json", work / f"{backend}-dumpdata.json"
    seeded = backed_up_rows(
        run([*MANAGE, "backupdb", "--only", "shop", "--output", str(backup)], source)
    )
    tables = subprocess.run(
        [*MANAGE, "shell", "-v", "0", "-c", SHOP_TABLES], env=source, check=True,
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    backup_peers, restore_peers = native_tools(dbs, backend, source, tables)

    def restored(argv: list[str]) -> Callable[[], Measure]:
        return lambda: run(argv, dbs.fresh(backend, "dbtools_peers_dst"))

    backups = {
        "backupdb": lambda: run(
            [*MANAGE, "backupdb", "--only", "shop", "--output", str(work / "out.json")], source
        ),
        **backup_peers,
    }
    restores = {
        "restoredb (into an empty database)": restored(
            [*MANAGE, "restoredb", "--file", str(backup), "--no-input"]
        ),
        **restore_peers,
    }
    phase(f"{backend} against its own tools: {seeded:,} rows, {rounds} rounds")
    measures = alternate(backups, rounds) | alternate(restores, rounds)
    if django_peers:
        measures |= alternate(
            {
                "dumpdata shop": lambda: run(
                    [*MANAGE, "dumpdata", "shop", "--output", str(fixture)], source
                ),
                "loaddata": restored([*MANAGE, "loaddata", str(fixture)]),
            },
            1,
        )
    table(measures)
    (backup_peer,) = backup_peers
    print(f"- backupdb: {against(measures, 'backupdb', backup_peer)} {backup_peer} (target 1.0x)")
    for peer in restore_peers:
        ours = "restoredb (into an empty database)"
        print(f"- restoredb: {against(measures, ours, peer)} {peer}")
    if django_peers:
        m = {name: median(runs) for name, runs in measures.items()}
        print(f"- backupdb: {m['dumpdata shop'] / m['backupdb']:.1f}x as fast as dumpdata")
        print(
            f"- restoredb: {m['loaddata'] / m['restoredb (into an empty database)']:.1f}x as fast as loaddata"
        )
    print(flush=True)
    dbs.drop(backend, "dbtools_peers_src")
    dbs.drop(backend, "dbtools_peers_dst")


def scaling_phase(dbs: Backends, backends: list[str], sizes: list[int]) -> None:
    phase(f"Scaling: {', '.join(f'{n:,}' for n in sizes)} seeded rows on {', '.join(backends)}")
    print("| backend | rows | backupdb s | µs a row | peak MB | restoredb s | µs a row | peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend in backends:
        for size in sizes:
            source = dbs.fresh(backend, "dbtools_peers_src")
            run([*MANAGE, "seedshop", "--rows", str(size)], source)
            if backend == "postgresql":
                psql(source["DATABASE_URL"], "VACUUM ANALYZE")
            backup = dbs.work / "scaling.json"
            backed = run([*MANAGE, "backupdb", "--only", "shop", "--output", str(backup)], source)
            dbs.drop(backend, "dbtools_peers_src")
            target = dbs.fresh(backend, "dbtools_peers_dst")
            restored = run([*MANAGE, "restoredb", "--file", str(backup), "--no-input"], target)
            dbs.drop(backend, "dbtools_peers_dst")
            rows = backed_up_rows(backed)
            print(
                f"| {backend} | {rows:,} | {backed.seconds:.1f} | {backed.seconds / rows * 1e6:.1f} | "
                f"{backed.peak_mb:.0f} | {restored.seconds:.1f} | "
                f"{restored.seconds / rows * 1e6:.1f} | {restored.peak_mb:.0f} |",
                flush=True,
            )
            backup.unlink()
    print()


PHASES = ("postgresql", "sqlite", "mariadb", "scaling")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated")
    parser.add_argument(
        "--django-peers",
        action="store_true",
        help="also time dumpdata and loaddata once on SQLite and MariaDB (loaddata: minutes)",
    )
    parser.add_argument("--scale-rows", default="100000,1000000,5000000", help="comma-separated")
    parser.add_argument(
        "--scale-backends", default="postgresql,sqlite,mariadb", help="comma-separated"
    )
    args = parser.parse_args()
    phases = args.phases.split(",")
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phase {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")

    dbs = started("peers")
    work = dbs.work
    try:
        if "postgresql" in phases:
            postgresql_phase(dbs, args.rows, args.rounds)
        for backend in ("sqlite", "mariadb"):
            if backend in phases:
                native_phase(dbs, backend, args.rows, args.rounds, args.django_peers)
        if "scaling" in phases:
            scaling_phase(
                dbs,
                args.scale_backends.split(","),
                [int(n) for n in args.scale_rows.split(",")],
            )
    finally:
        dbs.drop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
