"""Test settings: the demo site plus the edge-case apps, on up to three servers.

Aliases: `default` (SQLite, always), `postgresql` (TEST_POSTGRES_URL) and
`mariadb` (TEST_MARIADB_URL). A backend whose URL is not set is left out; the
tests for it are then skipped locally and fail under CI=true.
"""

import os
import tempfile

import environ

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

env = environ.Env()

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "django.contrib.postgres",
    "tests.edgecases",
    "tests.pgonly",
    "tests.lab",
]

# A file, not :memory:, so that a second connection or a subprocess (the
# concurrency and kill tests) sees the same test database.
_sqlite_test_file = os.path.join(tempfile.gettempdir(), f"dbtools-test-{os.getuid()}.sqlite3")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _sqlite_test_file.replace("dbtools-test", "dbtools-dev"),
        "TEST": {"NAME": _sqlite_test_file},
    }
}
if url := os.environ.get("TEST_POSTGRES_URL"):
    DATABASES["postgresql"] = env.db_url_config(url)
    DATABASES["postgresql"]["TEST"] = {"DEPENDENCIES": []}
if url := os.environ.get("TEST_MARIADB_URL"):
    DATABASES["mariadb"] = env.db_url_config(url)
    DATABASES["mariadb"].setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    DATABASES["mariadb"]["TEST"] = {
        "CHARSET": "utf8mb4",
        "COLLATION": "utf8mb4_bin",
        "DEPENDENCIES": [],
    }

# Subprocess tests run manage.py against the databases the test run created.
if os.environ.get("DBTOOLS_TESTS_USE_TEST_DATABASES") == "1":
    for _settings in DATABASES.values():
        _settings["NAME"] = _settings.get("TEST", {}).get("NAME") or "test_" + _settings["NAME"]
    if url := os.environ.get("DBTOOLS_TESTS_POSTGRES_HOST_PORT"):
        host, port = url.rsplit(":", 1)
        DATABASES["postgresql"].update(HOST=host, PORT=port)

DATABASE_ROUTERS = ["tests.pgonly.routers.PostgresOnlyRouter"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DBTOOLS = {
    "BACKUP_DIR": os.environ.get("DBTOOLS_TESTS_BACKUP_DIR")
    or os.path.join(tempfile.gettempdir(), "dbtools-test-backups")
}
SILENCED_SYSTEM_CHECKS = ["models.W038"]  # deferrable unique: PostgreSQL only
