#!/usr/bin/env python
"""backupdb and restoredb against PostgreSQL's own tools, alternating, in one phase.

    .venv/bin/python bench/peers.py --rows 1000000 --rounds 3

Seeds one PostgreSQL database with `seedshop`, then per round, in an order
that changes every round: backupdb and `pg_dump --data-only -Fc` of the shop
tables; restoredb (a merge into empty tables, and one into tables that
lost every other row), restoredb --replace (into full ones) and
`pg_restore --data-only --single-transaction` (PostgreSQL's atomic,
foreign-key-checked restore: the fair peer) into one migrated database
whose shop tables are emptied with TRUNCATE ... CASCADE before each empty
restore. Before each round it times a fixed CPU workload and reads the load
average, because this kind of machine's speed drifts within minutes: only
ratios from one phase are compared. Before each tool it waits for the
server's autovacuum workers to finish (the tool before may have left them
a million rows to analyze). Prints medians, ranges and the ratios.

Needs a PostgreSQL server the current user can create databases on
(BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import Measure, fresh_database, psql, run  # bench/run.py


def calibration() -> float:
    """Seconds for a fixed pure-Python workload: the machine's speed right now."""
    started = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i
    return time.perf_counter() - started


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    work = Path(tempfile.mkdtemp(prefix="dbtools-peers-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["DBTOOLS_BACKUP_DIR"] = str(work / "backups")
    manage = [sys.executable, "manage.py"]
    try:
        print(f"Seeding {args.rows:,} rows ...", flush=True)
        source = fresh_database(base, "dbtools_peers", env)
        run([*manage, "seedshop", "--rows", str(args.rows)], source)
        psql(source["DATABASE_URL"], "VACUUM ANALYZE")
        backup, dump = work / "shop.json", work / "shop.pgc"
        run([*manage, "backupdb", "--only", "shop", "--output", str(backup)], source)
        run(["pg_dump", "--data-only", "-Fc", "-t", "shop_*", "-f", str(dump),
             source["DATABASE_URL"]], env)  # fmt: skip
        target = fresh_database(base, "dbtools_peers_restore", env)
        tables = shop_tables(target["DATABASE_URL"])

        def emptied() -> dict[str, str]:
            psql(target["DATABASE_URL"], f"TRUNCATE {tables} CASCADE")  # admin log: empty here
            return target

        tools = {
            "backupdb": lambda: run(
                [*manage, "backupdb", "--only", "shop", "--output", str(work / "out.json")],
                source,
            ),
            "pg_dump --data-only -Fc": lambda: run(
                [
                    "pg_dump",
                    "--data-only",
                    "-Fc",
                    "-t",
                    "shop_*",
                    "-f",
                    str(work / "out.pgc"),
                    source["DATABASE_URL"],
                ],
                env,
            ),
            "restoredb (merge into empty tables)": lambda: run(
                [*manage, "restoredb", "--file", str(backup), "--no-input"], emptied()
            ),
            "restoredb (merge into half-full tables)": lambda: run(
                [*manage, "restoredb", "--file", str(backup), "--no-input"], target
            ),
            "restoredb --replace (full tables)": lambda: run(
                [*manage, "restoredb", "--file", str(backup), "--no-input", "--replace"], target
            ),
            "pg_restore --data-only --single-transaction": lambda: run(
                [
                    "pg_restore",
                    "--data-only",
                    "--single-transaction",
                    "-d",
                    emptied()["DATABASE_URL"],
                    str(dump),
                ],
                env,
            ),
        }
        measures: dict[str, list[Measure]] = {name: [] for name in tools}
        for round_no in range(args.rounds):
            speed, load = calibration(), os.getloadavg()[0]
            names = list(tools)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in names:
                if name.startswith("restoredb --replace"):  # needs full tables
                    run([*manage, "restoredb", "--file", str(backup), "--no-input"], emptied())
                if "half-full" in name:
                    run([*manage, "restoredb", "--file", str(backup), "--no-input"], emptied())
                    psql(target["DATABASE_URL"], HALVE_SQL)
                    psql(target["DATABASE_URL"], "VACUUM ANALYZE")
                settled(base)
                measures[name].append(tools[name]())
            print(
                f"  round {round_no + 1} of {args.rounds}: calibration {speed:.2f} s, "
                f"load {load:.2f}",
                flush=True,
            )

        print(f"\n{args.rows:,} seeded rows, PostgreSQL, {args.rounds} alternating rounds\n")
        print("| tool | seconds (median) | runs | peak MB |\n|---|---:|---|---:|")
        medians = {}
        for name, runs in measures.items():
            medians[name] = statistics.median(m.seconds for m in runs)
            seconds = ", ".join(f"{m.seconds:.1f}" for m in runs)
            peak = max(m.peak_mb for m in runs)
            print(f"| {name} | {medians[name]:.1f} | {seconds} | {peak:.0f} |")
        peer = medians["pg_restore --data-only --single-transaction"]
        print()
        print(f"backupdb: {medians['backupdb'] / medians['pg_dump --data-only -Fc']:.2f}x pg_dump")
        for name in (
            "restoredb (merge into empty tables)",
            "restoredb (merge into half-full tables)",
            "restoredb --replace (full tables)",
        ):
            print(f"{name}: {medians[name] / peer:.2f}x pg_restore --single-transaction")
    finally:
        for name in ("dbtools_peers", "dbtools_peers_restore"):
            psql(base, f"DROP DATABASE IF EXISTS {name}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
