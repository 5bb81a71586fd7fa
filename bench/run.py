#!/usr/bin/env python
"""Benchmark backupdb/restoredb against dumpdata/loaddata and pg_dump/pg_restore.

    .venv/bin/python bench/run.py --rows 1000000 --small-rows 100000

Every tool works on the same PostgreSQL database (the shop app's 18 tables,
seeded with `seedshop`), in one run, so the ratios it prints compare like
with like on the same machine at the same moment. Each tool runs as its own
process; its peak memory is that process's maximum resident set size.
Restores go into a freshly migrated, empty database.

Needs a PostgreSQL server the current user can create databases on
(BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Measure:
    seconds: float
    peak_mb: float
    client_cpu: float = 0.0  # the tool's own user + system seconds
    machine_cpu: float = 0.0  # every process's busy seconds meanwhile (the server's too)
    stdout: str = ""


def busy_cpu_seconds() -> float:
    """Seconds of CPU the whole machine has spent busy (not idle, not waiting
    on disk) since boot, from /proc/stat; 0 where there is none."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(f) for f in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run(
    argv: list[str], env: dict[str, str], quiet: bool = True, exits: tuple[int, ...] = (0,)
) -> Measure:
    """Run one tool as its own process: wall seconds, its peak resident memory
    and CPU (wait4's rusage), and the whole machine's busy CPU meanwhile.
    An exit code outside `exits` ends the benchmark with the tool's stderr."""
    busy = busy_cpu_seconds()
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.PIPE,
    )
    output: dict[str, bytes] = {}
    # Both pipes are drained while the tool runs, so a chatty one never blocks.
    readers = [
        threading.Thread(target=lambda n=n, p=p: output.__setitem__(n, p.read()))
        for n, p in (("stdout", process.stdout), ("stderr", process.stderr))
        if p is not None
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    machine = busy_cpu_seconds() - busy
    for reader in readers:
        reader.join()
    if process.returncode not in exits:
        sys.exit(f"{' '.join(argv)} failed:\n{output.get('stderr', b'').decode()}")
    return Measure(
        seconds,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        machine,
        output.get("stdout", b"").decode(),
    )


def best_of(times: int, argv: list[str], env: dict[str, str]) -> Measure:
    """The median time of a few runs (the fast tools are at the mercy of the
    machine's noise), and the highest memory seen."""
    runs = [run(argv, env) for _ in range(times)]
    seconds = sorted(m.seconds for m in runs)[len(runs) // 2]
    return Measure(seconds, max(m.peak_mb for m in runs))


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + name))


def psql(base: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-d", base, "-c", sql], check=True, capture_output=True)


def fresh_database(base: str, name: str, env: dict[str, str]) -> dict[str, str]:
    psql(base, f"DROP DATABASE IF EXISTS {name}")
    psql(base, f"CREATE DATABASE {name}")
    db_env = {**env, "DATABASE_URL": database_url(base, name)}
    run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], db_env)
    return db_env


def shop_rows(url: str) -> int:
    out = subprocess.run(
        ["psql", "-At", "-d", url, "-c",
         "SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE relname LIKE 'shop\\_%'"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(out.stdout.strip() or 0)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--small-rows", type=int, default=100_000, help="second size, for flat memory"
    )
    parser.add_argument(
        "--skip-loaddata", action="store_true", help="loaddata takes ~13 minutes at 1M rows"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of backupdb and pg_dump; the median counts"
    )
    args = parser.parse_args()

    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    work = Path(tempfile.mkdtemp(prefix="dbtools-bench-"))
    env["DBTOOLS_BACKUP_DIR"] = str(work / "backups")
    manage = [PYTHON, "manage.py"]
    results: dict[str, Measure] = {}

    print(f"Seeding {args.small_rows:,} and {args.rows:,} rows (seedshop) ...", flush=True)
    small = fresh_database(base, "dbtools_bench_small", env)
    run([*manage, "seedshop", "--rows", str(args.small_rows)], small)
    big = fresh_database(base, "dbtools_bench", env)
    run([*manage, "seedshop", "--rows", str(args.rows)], big)
    big_url = big["DATABASE_URL"]
    psql(big_url, "VACUUM ANALYZE")
    rows = shop_rows(big_url)
    print(f"  {rows:,} rows in the shop tables", flush=True)

    backup_file = work / "backup.json"
    results["backupdb (small)"] = best_of(
        args.repeat,
        [*manage, "backupdb", "--only", "shop", "--output", str(work / "small.json")],
        small,
    )
    results["backupdb"] = best_of(
        args.repeat, [*manage, "backupdb", "--only", "shop", "--output", str(backup_file)], big
    )
    results["backupdb --compress"] = best_of(
        args.repeat,
        [*manage, "backupdb", "--only", "shop", "--output", str(work / "b.json.gz")],
        big,
    )
    results["dumpdata"] = run(
        [*manage, "dumpdata", "shop", "--output", str(work / "dump.json")], big
    )
    results["pg_dump"] = best_of(
        args.repeat,
        ["pg_dump", "--data-only", "-Fc", "-t", "shop_*", "-f", str(work / "dump.pgc"), big_url],
        env,
    )

    target = fresh_database(base, "dbtools_bench_restore", env)
    results["restoredb (small)"] = run(
        [*manage, "restoredb", "--file", str(work / "small.json"), "--no-input"], target
    )
    target = fresh_database(base, "dbtools_bench_restore", env)
    results["restoredb"] = run(
        [*manage, "restoredb", "--file", str(backup_file), "--no-input"], target
    )
    target = fresh_database(base, "dbtools_bench_restore", env)
    results["pg_restore"] = run(
        [
            "pg_restore",
            "--data-only",
            "--disable-triggers",
            "-d",
            target["DATABASE_URL"],
            str(work / "dump.pgc"),
        ],
        env,
    )
    if not args.skip_loaddata:
        target = fresh_database(base, "dbtools_bench_restore", env)
        results["loaddata"] = run([*manage, "loaddata", str(work / "dump.json")], target)

    print(
        f"\n{rows:,} rows, PostgreSQL, shop app ({args.small_rows:,}-row database for the memory check)\n"
    )
    print("| tool | seconds | peak memory (MB) |\n|---|---:|---:|")
    for name, m in results.items():
        print(f"| {name} | {m.seconds:.1f} | {m.peak_mb:.0f} |")
    r = results
    print()
    print(f"backupdb vs dumpdata: {ratio(r['dumpdata'].seconds, r['backupdb'].seconds)} faster")
    print(
        f"backupdb vs pg_dump: {r['backupdb'].seconds / r['pg_dump'].seconds:.2f}x pg_dump's time"
    )
    print(
        f"backupdb peak memory: {r['backupdb (small)'].peak_mb:.0f} MB at {args.small_rows:,} rows, "
        f"{r['backupdb'].peak_mb:.0f} MB at {args.rows:,} rows"
    )
    print(
        f"restoredb peak memory: {r['restoredb (small)'].peak_mb:.0f} MB at {args.small_rows:,} rows, "
        f"{r['restoredb'].peak_mb:.0f} MB at {args.rows:,} rows"
    )
    if "loaddata" in r:
        print(
            f"restoredb vs loaddata: {ratio(r['loaddata'].seconds, r['restoredb'].seconds)} faster"
        )
    print(
        f"restoredb vs pg_restore: {r['restoredb'].seconds / r['pg_restore'].seconds:.2f}x pg_restore's time"
    )
    for name in ("dbtools_bench", "dbtools_bench_small", "dbtools_bench_restore"):
        psql(base, f"DROP DATABASE IF EXISTS {name}")


if __name__ == "__main__":
    main()
