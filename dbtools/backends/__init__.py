"""Each database's behaviour for dbtools, in one class per database.

Callers ask `backend_for(connection)` what the database can do (flags) and
have it do what differs between databases (methods); they never compare
vendor names. A database with no class of its own gets DatabaseBackend's
portable defaults. `connect()` opens a connection, and messages name it
with `vendor_name()` and `database_name()`, never with its host, user or password.
"""

from __future__ import annotations

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionDoesNotExist

from ..display import sentence
from ..exceptions import ConfigurationError, DatabaseUnavailable
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


def backend_class(vendor: str) -> type[DatabaseBackend]:
    """The class of a database named only by its vendor (a backup's "vendor")."""
    return BACKENDS.get(vendor, DatabaseBackend)


def vendor_name(connection: BaseDatabaseWrapper) -> str:
    return backend_for(connection).vendor_name()


def database_name(connection: BaseDatabaseWrapper) -> str:
    """The database's name, never its host, user or password (a SQLite path is cut to its file name)."""
    name = str(connection.settings_dict.get("NAME") or "")
    return backend_for(connection).database_name(name)


def connect(alias: str) -> BaseDatabaseWrapper:
    """The connection for `alias`, opened, or a one-line error that says what to check."""
    try:
        connection = connections[alias]
    except ConnectionDoesNotExist:
        raise ConfigurationError(
            f"There is no database {alias!r} in DATABASES; pass one of: {', '.join(connections)}."
        ) from None
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        raise DatabaseUnavailable(describe_connection_error(connection, exc)) from exc
    return connection


def describe_connection_error(connection: BaseDatabaseWrapper, exc: Exception) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    password = str(connection.settings_dict.get("PASSWORD") or "")
    if password:
        detail = detail.replace(password, "***")
    hint = (
        f"Check DATABASES[{connection.alias!r}] in the settings (host, port, user, password, "
        f"database name) and that the server is running."
    )
    if "neon.tech" in str(connection.settings_dict.get("HOST") or ""):
        hint += (
            " On Neon, a suspended endpoint can take a few seconds to wake: try again;"
            " and the connection needs sslmode=require."
        )
    return (
        f"Could not connect to the {vendor_name(connection)} database "
        f"{database_name(connection)!r} (alias {connection.alias!r}): {sentence(detail)} {hint}"
    )


__all__ = [
    "BACKENDS",
    "DatabaseBackend",
    "backend_for",
    "connect",
    "database_name",
    "describe_connection_error",
    "vendor_name",
]
