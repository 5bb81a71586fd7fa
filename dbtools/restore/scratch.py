"""Scratch databases: a new, empty database of the target's vendor (a SQLite
file in a private temporary folder, or a database beside the target), used
by a replay or drill and dropped afterwards, and, while in use, the only
database the running thread can reach. Leftovers of a killed run are removed
by the next run on the same host."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from .._compat import router_first
from ..backends import backend_for
from ..backends.mysql_loads import LOAD_FOLDER_PREFIX
from ..exceptions import RestoreError

SCRATCH_PREFIX = "dbtools_scratch_"
SCRATCH_FOLDER_PREFIX = (
    "dbtools-scratch-"  # SQLite: dbtools-scratch-<pid>-<random> in the temp folder
)


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


class Scratch:
    def __init__(self, alias: str, name: str, target_name: str) -> None:
        self.alias, self.name, self.target_name = alias, name, target_name


@contextmanager
def scratch_database(target: BaseDatabaseWrapper) -> Iterator[Scratch]:
    """A new, empty database of the target's vendor, as a connection alias."""
    run = f"{host_tag()}_{os.getpid()}_{secrets.token_hex(3)}"
    name = SCRATCH_PREFIX + run
    settings = dict(target.settings_dict)
    folder = None
    remove_leftover_folders()
    if backend_for(target).database_is_file:
        folder = tempfile.mkdtemp(prefix=f"{SCRATCH_FOLDER_PREFIX}{os.getpid()}-")
        settings["NAME"] = os.path.join(folder, "scratch.sqlite3")
    else:
        if target.in_atomic_block:
            # PostgreSQL refuses CREATE DATABASE in a transaction; MariaDB
            # would commit the caller's open transaction first.
            raise RestoreError(
                f"A replay or drill makes a scratch database beside "
                f"{target.settings_dict.get('NAME')!r}, which cannot be done inside the open "
                f"transaction on it (transaction.atomic()); call it outside one.",
                changed=False,
            )
        drop_leftovers(target)
        create_database(target, name)
        settings["NAME"] = name
    settings["TEST"] = {**settings.get("TEST", {}), "NAME": settings["NAME"]}
    alias = f"dbtools_scratch_{run}"
    # Registered as a connection, not in DATABASES: the project's settings
    # stay as they are, and nothing else can pick the alias up.
    connections[alias] = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, alias)
    try:
        yield Scratch(alias, settings["NAME"], str(target.settings_dict.get("NAME")))
    finally:
        connections[alias].close()
        del connections[alias]
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            drop_database(target, name)


def create_database(target: BaseDatabaseWrapper, name: str) -> None:
    quote = target.ops.quote_name
    suffix = backend_for(target).create_database_options
    try:
        with target.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {quote(name)}{suffix}")
    except DatabaseError as exc:
        user = target.settings_dict.get("USER") or "your user"
        grant = backend_for(target).create_database_grant(user, SCRATCH_PREFIX)
        raise RestoreError(
            f"Replay needs a scratch database beside {target.settings_dict.get('NAME')!r}, and creating "
            f"{name} failed: {' '.join(str(exc).split())}. Grant it ({grant}) or restore without "
            f"--replay.",
            changed=False,
        ) from exc


def drop_database(target: BaseDatabaseWrapper, name: str) -> None:
    with target.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {target.ops.quote_name(name)}")


def drop_leftovers(target: BaseDatabaseWrapper) -> None:
    """Scratch databases of this host whose process is gone (a replay killed mid-way)."""
    sql = backend_for(target).databases_like_sql
    with target.cursor() as cursor:
        cursor.execute(sql, [f"{SCRATCH_PREFIX}{host_tag()}\\_%"])
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        pid = name.removeprefix(SCRATCH_PREFIX).split("_")[1]
        if pid.isdigit() and not process_alive(int(pid)):
            try:
                drop_database(target, name)
            except DatabaseError:
                # Another user's (its owner may drop it): not this run's to
                # remove, and no reason to refuse this run's own replay.
                continue


DIFF_FOLDER_PREFIX = "dbtools-diff-"  # diffdb spills rows whose key order it cannot trust
PRIVATE_FOLDER_PREFIXES = (
    SCRATCH_FOLDER_PREFIX,
    "dbtools-replay-",
    "dbtools-drill-",
    DIFF_FOLDER_PREFIX,
    LOAD_FOLDER_PREFIX,  # MariaDB's LOAD DATA: a named pipe the rows pass through
)


def remove_leftover_folders() -> list[str]:
    """Our private temporary folders whose process is gone (a replay or drill
    killed mid-way): a SQLite scratch database, a carried-forward copy. They
    may hold the plaintext rows of an encrypted backup. Returns their names."""
    removed = []
    for prefix in PRIVATE_FOLDER_PREFIXES:
        for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = folder.name.removeprefix(prefix).split("-")[0]
            if (
                pid.isdigit()
                and folder.is_dir()
                and not folder.is_symlink()
                and folder.stat().st_uid == os.getuid()
                and not process_alive(int(pid))
            ):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ScratchRouter:
    """Sends every ORM query that names no database, in the thread that uses
    the scratch database, to it: the router list is the whole process's, and
    other threads (a web server's, a worker's) have no such alias. Naming it
    rather than `default` keeps the per-alias caches (content types) apart."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.thread = threading.get_ident()

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.alias if threading.get_ident() == self.thread else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self.alias if threading.get_ident() == self.thread else None


@contextmanager
def scratch_only(scratch: Scratch) -> Iterator[None]:
    """While the scratch database is in use, it *is* every database alias.

    Migrations reach databases in more ways than the ORM's routing: a data
    migration may use `django.db.connection`, pass `using="default"`, call
    `create_permissions()` or `call_command()`, each of which asks for an
    alias by name. Every alias in DATABASES is pointed at the scratch
    connection for this thread (Django's connections are per thread), so none
    of those can reach the user's databases; the originals come back after.
    Per-alias caches (content types, sites) are emptied on the way in and out,
    so no id read from one database is used in the other.
    """
    wrapper = connections[scratch.alias]
    saved = {alias: connections[alias] for alias in connections.settings}
    scratch_router = ScratchRouter(scratch.alias)
    clear_alias_caches()
    with router_first(router, scratch_router):
        for alias in saved:
            connections[alias] = wrapper
        try:
            yield
        finally:
            for alias, connection in saved.items():
                connections[alias] = connection
            clear_alias_caches()


def clear_alias_caches() -> None:
    from django.apps import apps

    if apps.is_installed("django.contrib.contenttypes"):
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
    if apps.is_installed("django.contrib.sites"):
        from django.contrib.sites.models import Site

        Site.objects.clear_cache()


@contextmanager
def private_folder(prefix: str) -> Iterator[Path]:
    """A folder only this user can read, named with this process's id so that
    the next run can remove it if this one is killed (`remove_leftover_folders`)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
