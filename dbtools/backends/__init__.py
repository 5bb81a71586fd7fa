"""Each database's behaviour for dbtools, in one class per database.

Callers ask `backend_for(connection)` what the database can do (flags) and
have it do what differs between databases (methods); they never compare
vendor names. A database with no class of its own gets DatabaseBackend's
portable defaults.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from .base import DatabaseBackend
from .mysql import MySQLBackend
from .postgresql import PostgreSQLBackend
from .sqlite import SQLiteBackend

BACKENDS: dict[str, type[DatabaseBackend]] = {
    "postgresql": PostgreSQLBackend,
    "mysql": MySQLBackend,
    "sqlite": SQLiteBackend,
}

# Kept on the connection wrapper, as Django keeps its features and operations:
# one backend per connection, gone with it.
ATTRIBUTE = "dbtools_backend"


def backend_for(connection: BaseDatabaseWrapper) -> DatabaseBackend:
    """The backend for `connection`, chosen by its vendor the first time it is asked for."""
    backend = connection.__dict__.get(ATTRIBUTE)
    if backend is None:
        backend = BACKENDS.get(connection.vendor, DatabaseBackend)(connection)
        connection.__dict__[ATTRIBUTE] = backend
    assert isinstance(backend, DatabaseBackend)
    return backend


__all__ = ["BACKENDS", "DatabaseBackend", "backend_for"]
