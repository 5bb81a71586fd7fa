"""Test settings: the demo site plus the edge-case apps, on up to three servers.

Aliases: `default` (SQLite, always), `postgresql` (TEST_POSTGRES_URL) and
`mariadb` (TEST_MARIADB_URL). Where a URL is not set, a server answering on
its default local port with the default user is used (and the test header
says so); a backend with neither is left out, its tests are not run locally
and fail under CI=true.

Every run gets its own names (the SQLite file, the `test_…` databases on the
servers, the backups folder), so two checkouts can run the suite at once on
one machine. Subprocesses inherit the run's name through the environment.
"""

import os
import secrets
import tempfile

import environ

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

env = environ.Env()

RUN = os.environ.setdefault("DBTOOLS_TESTS_RUN", f"{os.getpid()}_{secrets.token_hex(3)}")
# pytest-xdist's workers inherit the run's name from the process that started
# them; each gets names of its own, which its subprocesses inherit in turn.
if _worker := os.environ.get("PYTEST_XDIST_WORKER"):
    RUN = f"{RUN}_{_worker}"
LOCAL_SERVERS = {
    "TEST_POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "TEST_MARIADB_URL": "mysql://root:@127.0.0.1:3306/mysql",
}


def _answers(url: str) -> bool:
    """Does a server take this URL's default local login? Asked once per run."""
    config = env.db_url_config(url)
    try:
        if url.startswith("postgres"):
            import psycopg

            psycopg.connect(
                host=config["HOST"], port=config["PORT"], user=config["USER"],
                dbname=config["NAME"], connect_timeout=2,
            ).close()  # fmt: skip
        else:
            import MySQLdb

            MySQLdb.connect(
                host=config["HOST"], port=int(config["PORT"]), user=config["USER"],
                passwd=config["PASSWORD"], connect_timeout=2,
            ).close()  # fmt: skip
    except Exception:
        return False
    return True


if os.environ.get("CI") != "true":
    for _variable, _url in LOCAL_SERVERS.items():
        if _variable not in os.environ and f"DBTOOLS_TESTS_PROBED_{_variable}" not in os.environ:
            os.environ[f"DBTOOLS_TESTS_PROBED_{_variable}"] = "1"
            if _answers(_url):
                os.environ[_variable] = _url
                os.environ[f"DBTOOLS_TESTS_FOUND_{_variable}"] = "1"

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "django.contrib.postgres",
    "tests.edgecases",
    "tests.pgonly",
    "tests.lab",
    "tests.rollbacklab",
    "tests.replaylab",
    "tests.rawlab",
    "tests.schemalab",
    "tests.lintlab",
    "tests.squashlab",
    "tests.difflab",
]

# A file, not :memory:, so that a second connection or a subprocess (the
# concurrency and kill tests) sees the same test database.
_run_folder = os.environ.get("DBTOOLS_TESTS_RUN_FOLDER") or os.path.join(
    tempfile.gettempdir(), f"dbtools-tests-{RUN}"
)
os.makedirs(_run_folder, mode=0o700, exist_ok=True)
_test_name = f"test_dbtools_{RUN}"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DBTOOLS_TESTS_SQLITE_NAME")
        or os.path.join(_run_folder, "dev.sqlite3"),
        "TEST": {"NAME": os.path.join(_run_folder, "test.sqlite3")},
    }
}
if url := os.environ.get("TEST_POSTGRES_URL"):
    DATABASES["postgresql"] = env.db_url_config(url)
    DATABASES["postgresql"]["TEST"] = {"NAME": _test_name, "DEPENDENCIES": []}
if url := os.environ.get("TEST_MARIADB_URL"):
    DATABASES["mariadb"] = env.db_url_config(url)
    DATABASES["mariadb"].setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    DATABASES["mariadb"]["TEST"] = {
        "NAME": _test_name,
        "CHARSET": "utf8mb4",
        "COLLATION": "utf8mb4_bin",
        "DEPENDENCIES": [],
    }

# Subprocess tests run manage.py against the databases the test run created.
if os.environ.get("DBTOOLS_TESTS_USE_TEST_DATABASES") == "1":
    for _settings in DATABASES.values():
        _settings["NAME"] = _settings["TEST"]["NAME"]
    if url := os.environ.get("DBTOOLS_TESTS_POSTGRES_HOST_PORT"):
        host, port = url.rsplit(":", 1)
        DATABASES["postgresql"].update(HOST=host, PORT=port)

DATABASE_ROUTERS = ["tests.pgonly.routers.PostgresOnlyRouter"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DBTOOLS = {
    "BACKUP_DIR": os.environ.get("DBTOOLS_TESTS_BACKUP_DIR") or os.path.join(_run_folder, "backups")
}
if os.environ.get("DBTOOLS_S3_BUCKET"):  # a subprocess of the S3 tests (config/settings.py)
    DBTOOLS["STORAGE"] = "backups"
SILENCED_SYSTEM_CHECKS = [
    "models.W038",  # deferrable unique: PostgreSQL only
    "mysql.W003",  # difflab.Link: MariaDB keeps a long unique value as a hash
]

# A manage.py subprocess of tests/test_interrupts.py, to be paused at a phase.
if os.environ.get("DBTOOLS_TEST_PAUSE_AT"):
    INSTALLED_APPS.append("tests.faults")
