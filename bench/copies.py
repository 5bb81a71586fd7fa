#!/usr/bin/env python
"""The figures of issues 28 and 29: diffdb and restoredb --overwrite beside
backupdb and restoredb, masked and subset backups beside a plain one.

    .venv/bin/python bench/copies.py --rows 1000000 --rounds 3

Per backend (--backends, default postgresql,sqlite,mariadb), on one database
seeded with `seedshop --rows N`:

copies   backupdb, backupdb --mask (the demo's rules, config/settings.py: one
         on every personal field of the shop) and backupdb --limit
         shop.Order=<1% of the orders> (the orders and every row they
         reference), and backupdb --help (the start-up every command pays,
         subtracted for the subset's own time), alternating, --rounds times
         each. The project's bytecode is compiled first, as pip does.
undo     A data script (DATA_SCRIPT: 1% of the orders changed, 1% of the
         order items deleted), then per round: diffdb against the backup
         taken before it; restoredb --overwrite (which undoes it); the script
         again and a merge (which puts back only the deleted items); the
         script again and --replace. The script is not timed.

Each tool is its own process: its wall time, peak resident memory and CPU,
and the machine's busy CPU meanwhile, as in bench/peers.py (whose phase
header, calibration and tables this reuses). Ratios are within one backend
and one run. Needs the servers bench/peers.py needs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Callable

from peers import (
    MANAGE,
    Backends,
    alternate,
    backed_up_rows,
    median,
    phase,
    settled,
    started,
    table,
)
from run import Measure, psql, run  # bench/run.py

# A data script gone wrong: what diffdb finds and --overwrite undoes.
DATA_SCRIPT = """
from django.db import transaction
from shop.models import Order, OrderItem
orders = list(Order.objects.order_by("pk").values_list("pk", flat=True))[::100]
items = list(OrderItem.objects.order_by("pk").values_list("pk", flat=True))[::100]
with transaction.atomic():
    for start in range(0, len(orders), 500):
        Order.objects.filter(pk__in=orders[start:start + 500]).update(status="cancelled", notes="bench")
    for start in range(0, len(items), 500):
        OrderItem.objects.filter(pk__in=items[start:start + 500]).delete()
print(len(orders), len(items))
"""
STARTUP = "manage.py backupdb --help (start-up)"
COUNT_ORDERS = "from shop.models import Order; print(Order.objects.count())"
SCRIPT_SIZE = (
    "from shop.models import Order, OrderItem; "
    "print(-(-Order.objects.count() // 100), -(-OrderItem.objects.count() // 100))"
)


def shell(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [*MANAGE, "shell", "-v", "0", "-c", code], env=env, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return done.stdout.strip()


def copies_phase(dbs: Backends, backend: str, source: dict[str, str], rounds: int) -> float:
    """Returns backupdb's median seconds, the yardstick of the undo phase."""
    work = dbs.work
    masked = {**source, "DBTOOLS_MASK_KEY": "bench-only-key-not-a-secret-0123456789abcdef"}
    run([*MANAGE, "check"], masked)  # the rules are sound before they are timed
    orders = int(shell(COUNT_ORDERS, source))
    limit = f"shop.Order={max(1, orders // 100)}"
    out = str(work / "out.json")
    tools: dict[str, Callable[[], Measure]] = {
        "backupdb": lambda: run([*MANAGE, "backupdb", "--output", out], source),
        "backupdb --mask": lambda: run([*MANAGE, "backupdb", "--mask", "--output", out], masked),
        f"backupdb --limit {limit}": lambda: run(
            [*MANAGE, "backupdb", "--limit", limit, "--output", out], source
        ),
        # What every manage.py command pays before its work: Python, Django's
        # set-up, backupdb's imports. Subtracted to give the backup's own time.
        STARTUP: lambda: run([*MANAGE, "backupdb", "--help"], source),
    }
    if backend == "postgresql":
        tools = {name: settled_first(dbs, tool) for name, tool in tools.items()}
    phase(f"{backend}: masked and subset backups, {orders:,} orders, {rounds} rounds")
    measures = alternate(tools, rounds)
    table(measures)
    m = {name: median(runs) for name, runs in measures.items()}
    peak = max(r.peak_mb for r in measures["backupdb --mask"])
    print(
        f"- backupdb --mask: {m['backupdb --mask'] / m['backupdb']:.2f}x backupdb "
        f"(target 1.5x), peak {peak:.0f} MB (target 100 MB)"
    )
    subset = f"backupdb --limit {limit}"
    start = m[STARTUP]
    print(
        f"- {subset}: {m[subset] / m['backupdb']:.2f}x backupdb (target 0.2x), "
        f"{(m[subset] - start) / (m['backupdb'] - start):.2f}x without the start-up "
        f"({start:.2f} s), "
        f"{backed_up_rows(measures[subset][0]):,} rows of {backed_up_rows(measures['backupdb'][0]):,}\n",
        flush=True,
    )
    return m["backupdb"]


def settled_first(dbs: Backends, tool: Callable[[], Measure]) -> Callable[[], Measure]:
    def measured() -> Measure:
        settled(dbs.postgres)
        return tool()

    return measured


def undo_phase(
    dbs: Backends, backend: str, source: dict[str, str], rounds: int, backupdb_seconds: float
) -> None:
    before = dbs.work / "before.json"
    run([*MANAGE, "backupdb", "--output", str(before)], source)
    restoredb = [*MANAGE, "restoredb", "--file", str(before), "--no-input"]

    def script_run() -> None:
        shell(DATA_SCRIPT, source)
        if backend == "postgresql":
            psql(source["DATABASE_URL"], "VACUUM ANALYZE")

    def timed(argv: list[str], exits: tuple[int, ...] = (0,)) -> Measure:
        if backend == "postgresql":
            settled(dbs.postgres)
        return run(argv, source, exits=exits)

    # Each step starts from the state the one before left, so that only the
    # script runs in between: diffdb changes nothing, --overwrite and --replace
    # bring back the backup, a merge the deleted items only (the script then
    # changes the same orders and deletes the same items again).
    steps: list[tuple[str, bool, list[str], tuple[int, ...]]] = [
        ("diffdb (after the script)", True, [*MANAGE, "diffdb", "--file", str(before)], (1,)),
        ("restoredb --overwrite (after the script)", False, [*restoredb, "--overwrite"], (0,)),
        ("restoredb, a merge (after the script)", True, restoredb, (0,)),
        ("restoredb --replace (after the script)", True, [*restoredb, "--replace"], (0,)),
    ]
    orders, items = shell(SCRIPT_SIZE, source).split()
    phase(f"{backend}: undoing a data script ({orders} orders changed, {items} items deleted), "
          f"{rounds} rounds")  # fmt: skip
    measures: dict[str, list[Measure]] = {name: [] for name, *_ in steps}
    for round_no in range(rounds):
        for name, script_first, argv, exits in steps:
            if script_first:
                script_run()
            measures[name].append(timed(argv, exits))
        print(f"  round {round_no + 1} of {rounds} done", flush=True)
    table(measures)
    m = {name: median(runs) for name, runs in measures.items()}
    diff = m["diffdb (after the script)"]
    peak = max(r.peak_mb for r in measures["diffdb (after the script)"])
    print(
        f"- diffdb: {diff / backupdb_seconds:.2f}x backupdb of the copies phase "
        f"(target 1.5x on PostgreSQL), peak {peak:.0f} MB (target 100 MB)"
    )
    overwrite = m["restoredb --overwrite (after the script)"]
    print(
        f"- restoredb --overwrite: {overwrite / m['restoredb, a merge (after the script)']:.2f}x "
        f"the merge, {overwrite / m['restoredb --replace (after the script)']:.2f}x --replace\n",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite,mariadb", help="comma-separated")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if unknown := set(backends) - {"postgresql", "sqlite", "mariadb"}:
        parser.error(f"unknown backend {', '.join(sorted(unknown))}")

    dbs = started("copies")
    try:
        for backend in backends:
            print(f"Seeding {args.rows:,} rows on {backend} ...", flush=True)
            source = dbs.fresh(backend, "dbtools_copies_src")
            run([*MANAGE, "seedshop", "--rows", str(args.rows)], source)
            if backend == "postgresql":
                psql(source["DATABASE_URL"], "VACUUM ANALYZE")
            seconds = copies_phase(dbs, backend, source, args.rounds)
            undo_phase(dbs, backend, source, args.rounds, seconds)
            dbs.drop(backend, "dbtools_copies_src")
    finally:
        dbs.drop_all()
        shutil.rmtree(dbs.work, ignore_errors=True)


if __name__ == "__main__":
    main()
