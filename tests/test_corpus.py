"""safemigrate's checks on real migrations: Django's contrib apps and six
third-party apps (pinned in the dev extra), migrated from an empty database one
step at a time, each step checked first (tests/corpus/walk.py). The findings must
be exactly the reviewed table of docs/safemigrate-corpus.md."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from django.db import connections

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

REVIEW = ROOT / "docs" / "safemigrate-corpus.md"
ROW = re.compile(r"^\| `([^`]+)` \| `(DBT\d{3})` \| (\w+)(, acknowledged)? \| ([^|]+) \|")


def reviewed(vendor: str) -> set[tuple[str, str, str, bool]]:
    found = set()
    for line in REVIEW.read_text().splitlines():
        row = ROW.match(line)
        if row:
            migration, code, level, acknowledged, where = row.groups()
            names = {w.strip() for w in where.split(",")}
            if "all" in names or vendor in names:
                found.add((migration, code, level, bool(acknowledged)))
    return found


def corpus_database(alias: str, folder: Path) -> tuple[str, str | None]:
    """A URL for a new empty database on the alias's server, and its name to drop."""
    connection = connections[alias]
    if connection.vendor == "sqlite":
        return f"sqlite:///{folder / 'corpus.sqlite3'}", None
    name = f"corpus_{os.getpid()}_{secrets.token_hex(3)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    s = connection.settings_dict
    scheme = "postgres" if connection.vendor == "postgresql" else "mysql"
    return f"{scheme}://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST']}:{s['PORT']}/{name}", name


def test_the_checks_on_real_apps_migrations(alias, tmp_path):
    connection = connections[alias]
    url, name = corpus_database(alias, tmp_path)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.corpus.walk"],
            cwd=ROOT,
            env={
                **os.environ,
                "CORPUS_DATABASE_URL": url,
                "DJANGO_SETTINGS_MODULE": "tests.corpus.settings",
            },
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        if name:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    assert done.returncode == 0, done.stderr
    *findings, summary = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert summary["steps"] == 53
    found = {
        (f["migration"], f["code"], f["level"], f["acknowledged"] is not None) for f in findings
    }
    expected = reviewed(connection.vendor)
    assert found == expected, (
        f"not in the review: {sorted(found - expected)}; reviewed, not found: "
        f"{sorted(expected - found)}"
    )
    assert not [f for f in findings if f["level"] == "high" and f["acknowledged"] is None]
