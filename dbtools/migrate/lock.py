"""One safemigrate per database at a time: the lock each run holds while it
backs up, migrates and rolls back."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..backends import backend_for
from ..exceptions import MigrationError

LOCK_NAME = "dbtools.safemigrate"
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
BUSY = "Another safemigrate is already running on this database; wait for it to finish, then run this again."


def server_lock_name(connection: BaseDatabaseWrapper) -> str:
    """MariaDB/MySQL's GET_LOCK names are server-wide (PostgreSQL's advisory
    locks are per database): the database's name goes in, hashed to fit the
    64-character limit."""
    database = str(connection.settings_dict["NAME"])
    return f"{LOCK_NAME}.{hashlib.sha256(database.encode()).hexdigest()[:32]}"


@contextmanager
def migration_lock(using: str) -> Iterator[None]:
    """One safemigrate per database at a time.

    PostgreSQL: a transaction-scoped advisory lock held by a second connection
    for the whole run (safe through a transaction pooler). MariaDB/MySQL:
    GET_LOCK on a second connection. SQLite: an exclusive transaction on a
    small SQLite file next to the database, which SQLite's own file locking
    holds on every platform and releases if the process dies.
    """
    connection = connections[using]
    if backend_for(connection).database_is_file:
        name = str(connection.settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            yield
            return
        lock = sqlite3.connect(name + ".safemigrate.lock", timeout=0, isolation_level=None)
        try:
            try:
                lock.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError:
                raise MigrationError(BUSY) from None
            yield
        finally:
            lock.close()
        return
    holder = connections.create_connection(using)
    try:
        with holder.cursor() as cursor:
            if backend_for(holder).has_transaction_locks:
                holder.set_autocommit(False)
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
            else:
                cursor.execute("SELECT GET_LOCK(%s, 0)", [server_lock_name(holder)])
            (acquired,) = cursor.fetchone()
        if not acquired:
            raise MigrationError(BUSY)
        yield
    finally:
        try:
            if backend_for(holder).has_transaction_locks:
                holder.rollback()  # ends the transaction, and with it the lock
            elif holder.connection is not None:
                with holder.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", [server_lock_name(holder)])
        finally:
            holder.close()
