"""The demo project itself: settings, migrations, seed data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from shop import models as m
from shop.seed import flush_shop, seed_shop, shop_models

ROOT = Path(__file__).resolve().parent.parent


def settings_database(env: dict[str, str]) -> str:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup();"
        "from django.conf import settings; d=settings.DATABASES['default'];"
        "print(d['ENGINE'], d['NAME'])"
    )
    clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_default_database_is_the_embedded_sqlite_file():
    assert settings_database({}) == f"django.db.backends.sqlite3 {ROOT / 'db.sqlite3'}"


def test_database_url_chooses_the_database():
    assert settings_database({"DATABASE_URL": "postgres://u:p@db.example.com:5432/shop"}) == (
        "django.db.backends.postgresql shop"
    )


def test_backups_folder_commits_only_its_gitignore():
    assert (ROOT / "backups" / ".gitignore").read_text() == "*\n!.gitignore\n"


@pytest.mark.django_db(databases="__all__")
def test_no_model_changes_without_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_every_app_migrated(alias):
    connection = connections[alias]
    tables = set(connection.introspection.table_names())
    assert {model._meta.db_table for model in shop_models()} <= tables
    assert "edgecases_italianrestaurant" in tables
    assert "edgecases_article_tags" in tables
    assert "edgecases_external_report" not in tables  # unmanaged
    assert ("pgonly_postgrestypes" in tables) == (connection.vendor == "postgresql")


def snapshot_of_shop(alias: str) -> dict[str, list[tuple]]:
    skip = {"created_at", "updated_at", "assigned_at", "subscribed_at"}  # auto_now: time of seeding
    result = {}
    for model in shop_models():
        fields = [f.attname for f in model._meta.concrete_fields if f.name not in skip]
        result[model._meta.label] = list(
            model._base_manager.using(alias).order_by("pk").values_list(*fields)
        )
    return result


def test_seed_is_deterministic_and_fills_every_table(alias):
    counts = seed_shop(2_000, seed=7, using=alias)
    assert set(counts) == {model._meta.label for model in shop_models()}
    assert all(n > 0 for n in counts.values())
    assert 1_800 <= sum(counts.values()) <= 2_300
    first = snapshot_of_shop(alias)
    flush_shop(alias)
    assert all(not model._base_manager.using(alias).exists() for model in shop_models())
    seed_shop(2_000, seed=7, using=alias)
    assert snapshot_of_shop(alias) == first
    # Sequences were moved past the explicit ids.
    m.Category.objects.using(alias).create(name="New", slug="new-category")


def test_seedshop_refuses_to_mix_with_existing_data(alias):
    seed_shop(200, using=alias)
    with pytest.raises(Exception, match=r"already has data\. Run again with --flush"):
        call_command("seedshop", "--rows", "200", "--database", alias, verbosity=0)
    call_command("seedshop", "--rows", "300", "--flush", "--database", alias, verbosity=0)
    assert m.User.objects.using(alias).count() == 6


def test_two_test_runs_use_their_own_databases_and_files():
    """Two checkouts running the suite at once on one machine must not share a
    SQLite file, a test database on a server, or a backups folder."""
    script = (
        "import json; from tests import settings as s; "
        "print(json.dumps([s.DATABASES['default']['TEST']['NAME'], s.DBTOOLS['BACKUP_DIR'], "
        "[d['TEST'].get('NAME') for a, d in sorted(s.DATABASES.items()) if a != 'default']]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBTOOLS_TESTS_")}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    for run in runs:
        shutil.rmtree(Path(run[0]).parent)
    first, second = runs
    assert first[0] != second[0] and first[1] != second[1]
    assert all(a != b for a, b in zip(first[2], second[2], strict=True))
    assert all(name.startswith("test_dbtools_") for name in first[2])
