#!/usr/bin/env python
"""What a change costs: backupdb and restoredb of another revision against this
checkout's, on the same data, alternating, in one run.

    .venv/bin/python bench/compare.py --base 43f336d --rows 300000 --rounds 3

Seeds one PostgreSQL database with `seedshop`, backs it up with this
checkout, then per round runs each revision's backupdb on it and each
revision's restoredb into a freshly migrated database, in alternating order
(the machine's speed drifts, so only ratios from one run are compared);
with --merge-into-full, restoredb merges instead into one database already
holding every row, so every row is skipped (the cost of asking which keys
exist). The
other revision runs from a temporary `git worktree`, with this checkout's
virtualenv. Prints the median of each and the ratio.

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

from run import ROOT, fresh_database, psql, run  # bench/run.py


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the revision to compare with (git rev)")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--merge-into-full",
        action="store_true",
        help="restoredb merges into a database that already holds every row (all skipped: "
        "what asking which keys exist costs) instead of into an empty one",
    )
    args = parser.parse_args()

    base_url = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    work = Path(tempfile.mkdtemp(prefix="dbtools-compare-"))
    tree = work / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["DBTOOLS_BACKUP_DIR"] = str(work / "backups")
    trees = {args.base: tree, "this checkout": ROOT}
    try:
        print(f"Seeding {args.rows:,} rows ...", flush=True)
        source = fresh_database(base_url, "dbtools_compare", env)
        run([sys.executable, "manage.py", "seedshop", "--rows", str(args.rows)], source)
        psql(source["DATABASE_URL"], "VACUUM ANALYZE")
        backup = work / "backup.json"
        run(
            [sys.executable, "manage.py", "backupdb", "--only", "shop", "--output", str(backup)],
            source,
        )

        times: dict[str, list[float]] = {}
        for round_no in range(args.rounds):
            order = list(trees.items()) if round_no % 2 == 0 else list(reversed(trees.items()))
            for name, folder in order:
                manage = [sys.executable, str(folder / "manage.py")]
                out = work / f"out-{round_no}.json"
                seconds = timed(
                    [*manage, "backupdb", "--only", "shop", "--output", str(out)], source, folder
                )
                times.setdefault(f"backupdb, {name}", []).append(seconds)
                out.unlink()
                if not args.merge_into_full:
                    target = fresh_database(base_url, "dbtools_compare_restore", env)
                elif round_no == 0 and name == order[0][0]:  # filled once; merges change nothing
                    target = fresh_database(base_url, "dbtools_compare_restore", env)
                    timed(
                        [*manage, "restoredb", "--file", str(backup), "--no-input", "--replace"],
                        target,
                        folder,
                    )
                seconds = timed(
                    [*manage, "restoredb", "--file", str(backup), "--no-input"], target, folder
                )
                times.setdefault(f"restoredb, {name}", []).append(seconds)
            print(f"  round {round_no + 1} of {args.rounds} done", flush=True)

        print(
            f"\n{args.rows:,} seeded rows, PostgreSQL, median of {args.rounds} alternating rounds\n"
        )
        print("| tool | seconds (median) | runs |\n|---|---:|---|")
        for name, values in times.items():
            runs = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {statistics.median(values):.1f} | {runs} |")
        for tool in ("backupdb", "restoredb"):
            before = statistics.median(times[f"{tool}, {args.base}"])
            after = statistics.median(times[f"{tool}, this checkout"])
            print(f"{tool}: this checkout takes {after / before:.2f}x the time of {args.base}")
    finally:
        for name in ("dbtools_compare", "dbtools_compare_restore"):
            psql(base_url, f"DROP DATABASE IF EXISTS {name}")
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)


def timed(argv: list[str], env: dict[str, str], folder: Path) -> float:
    """One run from `folder`, so that revision's dbtools is the one imported."""
    started = time.monotonic()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return time.monotonic() - started


if __name__ == "__main__":
    main()
