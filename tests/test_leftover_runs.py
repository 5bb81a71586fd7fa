"""A killed test run leaves nothing the next run does not clear, and two
checkouts' runs on one machine leave each other alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from django.conf import settings

from tests.conftest import backends
from tests.leftover_runs import (
    DATABASE_PREFIX,
    FOLDER_PREFIX,
    drop_mariadb,
    drop_postgresql,
    remove_dead_folders,
)


def ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_the_folders_of_ended_runs_go(tmp_path):
    dead = tmp_path / f"{FOLDER_PREFIX}{ended_pid()}_abc123"
    alive = tmp_path / f"{FOLDER_PREFIX}{os.getpid()}_abc123"
    other = tmp_path / f"{FOLDER_PREFIX}notarun"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "test.sqlite3").write_text("x")
    assert remove_dead_folders(str(tmp_path)) == [dead]
    assert not dead.exists() and alive.exists() and other.exists()


DROPPERS = {"postgresql": drop_postgresql, "mariadb": drop_mariadb}


def make_database(backend: str, name: str) -> None:
    from django.db import connections

    with connections[backend].cursor() as cursor:
        quoted = connections[backend].ops.quote_name(name)
        cursor.execute(f"CREATE DATABASE {quoted}")


def database_names(backend: str) -> set[str]:
    from django.db import connections

    query = {"postgresql": "SELECT datname FROM pg_database", "mariadb": "SHOW DATABASES"}
    with connections[backend].cursor() as cursor:
        cursor.execute(query[backend])
        return {row[0] for row in cursor.fetchall()}


@backends("postgresql", "mariadb")
def test_only_the_databases_of_ended_runs_are_dropped(alias):
    backend = alias
    dead = f"{DATABASE_PREFIX}{ended_pid()}_abc123"
    alive = f"{DATABASE_PREFIX}{os.getpid()}_def456"
    make_database(backend, dead)
    make_database(backend, alive)
    try:
        dropped = DROPPERS[backend](settings.DATABASES[backend])
        names = database_names(backend)
        assert dead in dropped and alive not in dropped
        assert dead not in names and alive in names
        assert settings.DATABASES[backend]["TEST"]["NAME"] in names  # this run's own
    finally:
        DROPPERS[backend]({**settings.DATABASES[backend]})
        from django.db import connections

        with connections[backend].cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {connections[backend].ops.quote_name(alive)}")


CHILD = """
import subprocess, sys
from tests.conftest import dies_with_the_run
child = subprocess.Popen(["sleep", "60"], preexec_fn=dies_with_the_run)
print(child.pid, flush=True)
sys.stdin.read()
"""


def test_a_helper_process_dies_with_a_killed_run():
    run = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert run.stdout is not None
    helper = int(run.stdout.readline())
    run.kill()
    run.wait()
    deadline = time.monotonic() + 10
    while not has_ended(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert has_ended(helper)


def has_ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whichever process adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
