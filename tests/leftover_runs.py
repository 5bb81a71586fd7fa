"""What a killed test run leaves: its folder under the temp directory and its
test databases, named after the run (tests/settings.py: `<pid>_<hex>`).

A run that ends cleans up after itself (conftest.pytest_sessionfinish, and
pytest-django drops its databases); one killed with SIGKILL cannot. The next
run removes what belongs to runs whose process is gone, and nothing else:
another checkout's run on this machine is alive, so its folder and databases
are left alone.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dbtools.restore.scratch import process_alive

RUN_NAME = re.compile(r"(?P<pid>\d+)_[0-9a-f]{6}(_gw\d+)?")  # _gwN: a pytest-xdist worker
FOLDER_PREFIX = "dbtools-tests-"
DATABASE_PREFIX = "test_dbtools_"


def dead_run(name: str, prefix: str) -> bool:
    """Is `name` the folder or database of a run whose process has ended?"""
    if not name.startswith(prefix):
        return False
    match = RUN_NAME.fullmatch(name[len(prefix) :])
    return bool(match) and not process_alive(int(match["pid"]))


def remove_dead_folders(temp: str | None = None) -> list[Path]:
    removed = []
    for folder in Path(temp or tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        if folder.is_dir() and dead_run(folder.name, FOLDER_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def dead_databases(names: list[str]) -> Iterator[str]:
    return (name for name in names if dead_run(name, DATABASE_PREFIX))


def remove_dead_databases(url_settings: dict[str, dict[str, object]]) -> list[str]:
    """Drops the dead runs' test databases on the servers the tests use;
    a server that does not answer is passed over (the run reports it)."""
    removed = []
    if config := url_settings.get("postgresql"):
        removed += drop_postgresql(config)
    if config := url_settings.get("mariadb"):
        removed += drop_mariadb(config)
    return removed


def drop_postgresql(config: dict[str, object]) -> list[str]:
    import psycopg
    from psycopg import sql

    try:
        connection = psycopg.connect(
            host=str(config.get("HOST") or "127.0.0.1"),
            port=str(config.get("PORT") or 5432),
            user=str(config.get("USER") or "postgres"),
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )
    except psycopg.Error:
        return []
    with connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
        dead = list(dead_databases(names))
        for name in dead:
            # FORCE: a session the killed run left (a pooler it started) holds it.
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return dead


def drop_mariadb(config: dict[str, object]) -> list[str]:
    import MySQLdb

    try:
        connection = MySQLdb.connect(
            host=str(config.get("HOST") or "127.0.0.1"),
            port=int(str(config.get("PORT") or 3306)),
            user=str(config.get("USER") or "root"),
            passwd=str(config.get("PASSWORD") or ""),
            connect_timeout=2,
        )
    except MySQLdb.Error:
        return []
    try:
        cursor = connection.cursor()
        cursor.execute("SHOW DATABASES")
        dead = list(dead_databases([row[0] for row in cursor.fetchall()]))
        for name in dead:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        connection.close()
    return dead
