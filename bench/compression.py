#!/usr/bin/env python
"""What compression and encryption cost: backupdb and a read-through, plain vs gzip vs zstd vs age.

    .venv/bin/python bench/compression.py --rows 1000000 --rounds 3

Seeds one PostgreSQL database with `seedshop`, then in each round backs it
up once per variant (the variants' order rotates from round to round, so a
drift in the machine's speed falls on each of them alike) and reads each file
through as a restore's first pass does (decrypt, decompress, checksums:
`dbtools.archive.verify`). Each round starts with a fixed CPU workload, so a
round on a slower moment of the machine shows as such. Medians over the rounds.

Needs a PostgreSQL server the current user can create databases on
(BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres),
and the `age-keygen` tool (Debian package `age`) for the encrypted variant.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PYTHON, ROOT, fresh_database, psql, run, shop_rows

VARIANTS = {
    "plain": ("b.json", []),
    "gzip": ("b.json.gz", ["--compress", "gzip"]),
    "zstd": ("b.json.zst", ["--compress", "zstd"]),
    "zstd + age": ("b.json.zst.age", ["--compress", "zstd"]),
}
VERIFY = (
    "import sys, django; django.setup(); from dbtools.archive import verify; "
    "from dbtools.archive.envelope import identity_file\n"
    "with identity_file(sys.argv[2] or None): verify(__import__('pathlib').Path(sys.argv[1]))"
)


def calibrate() -> float:
    """Seconds for a fixed piece of CPU work (SHA-256 over 256 MB)."""
    block = b"\0" * (1 << 20)
    started = time.monotonic()
    digest = hashlib.sha256()
    for _ in range(256):
        digest.update(block)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    work = Path(tempfile.mkdtemp(prefix="dbtools-bench-compress-"))
    identity = work / "key.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = next(
        line.split(": ", 1)[1]
        for line in identity.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    manage = [PYTHON, "manage.py"]

    print(f"Seeding {args.rows:,} rows (seedshop) ...", flush=True)
    db = fresh_database(base, "dbtools_bench_compress", env)
    run([*manage, "seedshop", "--rows", str(args.rows)], db)
    psql(db["DATABASE_URL"], "VACUUM ANALYZE")
    rows = shop_rows(db["DATABASE_URL"])
    print(f"  {rows:,} rows in the shop tables", flush=True)

    names = list(VARIANTS)
    backup: dict[str, list[float]] = {n: [] for n in names}
    read: dict[str, list[float]] = {n: [] for n in names}
    peak: dict[str, float] = dict.fromkeys(names, 0.0)
    sizes: dict[str, int] = {}
    for round_no in range(args.rounds):
        load = os.getloadavg()[0]
        print(f"round {round_no + 1}: load {load:.2f}, calibration {calibrate():.2f}s", flush=True)
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            file_name, flags = VARIANTS[name]
            target = work / file_name
            target.unlink(missing_ok=True)
            variant_env = dict(db)
            if name.endswith("age"):
                variant_env["DBTOOLS_ENCRYPT_TO"] = public
            m = run(
                [*manage, "backupdb", "--only", "shop", "--output", str(target), *flags],
                variant_env,
            )
            backup[name].append(m.seconds)
            peak[name] = max(peak[name], m.peak_mb)
            sizes[name] = target.stat().st_size
            key = str(identity) if name.endswith("age") else ""
            r = run([PYTHON, "-c", VERIFY, str(target), key], {**db, "PYTHONPATH": str(ROOT)})
            read[name].append(r.seconds)
            peak[name] = max(peak[name], r.peak_mb)

    plain_backup = statistics.median(backup["plain"])
    print(f"\n{rows:,} rows, PostgreSQL, shop app; medians of {args.rounds} rounds\n")
    print("| variant | backupdb s | vs plain | read-through s | size MB | vs plain | peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        b = statistics.median(backup[name])
        print(
            f"| {name} | {b:.2f} | {b / plain_backup:.2f}x | {statistics.median(read[name]):.2f} | "
            f"{sizes[name] / 1e6:.0f} | {sizes[name] / sizes['plain']:.2f}x | {peak[name]:.0f} |"
        )
    psql(base, "DROP DATABASE IF EXISTS dbtools_bench_compress")


if __name__ == "__main__":
    main()
