#!/usr/bin/env python3
"""Set up and run the project with nothing but Python installed.

    python3 dev.py demo     # venv, migrate, seed, backup, restore on SQLite
    python3 dev.py test     # the whole test suite (see CONTRIBUTING.md)
    python3 dev.py lint     # ruff and mypy
    python3 dev.py test-django52   # dbtools' tests on Django 5.2 LTS

Any Python 3.8+ can run this file; it finds a Python that Django 6.1 supports
(3.12 or newer), makes `.venv` with it and installs the project there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 12)


def python_version(exe: str, env: dict[str, str] | None = None) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def find_python() -> list[str]:
    """A command that runs Python >= 3.12, as a list of argv words."""
    if sys.version_info >= MIN_PYTHON:
        return [sys.executable]
    for name in ("python3.14", "python3.13", "python3.12", "python3"):
        exe = shutil.which(name)
        if exe and (python_version(exe) or (0, 0)) >= MIN_PYTHON:
            return [exe]
    # pyenv installs versions that its shims only expose when selected.
    if shutil.which("pyenv"):
        versions = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True
        ).stdout.split()
        for version in sorted(versions, key=_version_key, reverse=True):
            prefix = subprocess.run(
                ["pyenv", "prefix", version], capture_output=True, text=True
            ).stdout.strip()
            exe = str(Path(prefix) / "bin" / "python")
            if prefix and (python_version(exe) or (0, 0)) >= MIN_PYTHON:
                return [exe]
    sys.exit(
        "dev.py: no Python 3.12 or newer found (Django 6.1 needs it). "
        "Install one (python.org, your package manager or pyenv) and run again."
    )


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def run(*argv: str | Path, env: dict[str, str] | None = None, check: bool = True) -> int:
    print("+", " ".join(str(a) for a in argv), flush=True)
    code = subprocess.run([str(a) for a in argv], cwd=ROOT, env=env).returncode
    if check and code != 0:
        sys.exit(code)
    return code


def venv(name: str = ".venv", django: str | None = None) -> Path:
    """Create (once) and return the venv's python, with the project installed."""
    path = ROOT / name
    python = path / "bin" / "python"
    stamp = path / ".installed"
    wanted = (ROOT / "pyproject.toml").read_text() + (django or "")
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        run(*find_python(), "-m", "venv", path)
    run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    if django:
        run(python, "-m", "pip", "install", "--quiet", django)
    # mysqlclient compiles against libmariadb; without it only MariaDB is lost.
    if run(python, "-m", "pip", "install", "--quiet", "-e", ".[mysql]", check=False) != 0:
        print(
            "dev.py: mysqlclient did not install, so the MariaDB tests will be skipped. "
            "On Debian/Ubuntu: apt-get install libmariadb-dev pkg-config gcc python3-dev",
            file=sys.stderr,
        )
        if os.environ.get("CI") == "true":
            sys.exit(1)
        return python  # no stamp: the next run tries mysqlclient again
    stamp.write_text(wanted)
    return python


BREAK_PRICES = (
    "from shop.models import Product; "
    "n = Product.objects.update(price=0); "
    "print(f'A bad data script set the price of {n} products to 0.')"
)
SHOW_PRICES = (
    "from shop.models import Product; "
    "print(f'Products priced 0 now: {Product.objects.filter(price=0).count()}')"
)


def demo() -> None:
    """The reference workflow on the embedded SQLite file, end to end."""
    python = venv()
    env = {**os.environ}
    env.pop("DATABASE_URL", None)  # the demo always runs on the embedded SQLite file
    db = ROOT / "db.sqlite3"
    if db.exists():
        db.unlink()
    steps = [
        ["migrate", "--no-input", "-v", "0"],
        ["seedshop", "--rows", "20000", "--seed", "42"],
        ["backupdb"],
        ["listbackups", "--verify"],
        ["shell", "-v", "0", "-c", BREAK_PRICES],
        ["restoredb", "--replace", "--no-input"],
        ["shell", "-v", "0", "-c", SHOW_PRICES],
        ["safemigrate", "--no-input"],
    ]
    for step in steps:
        run(python, "manage.py", *step, env=env)


def ci_report() -> list[str]:
    """Under CI, the slowest tests are listed: CI time is a budget to watch."""
    return ["--durations=25"] if os.environ.get("CI") == "true" else []


def workers(extra: list[str]) -> list[str]:
    """pytest-xdist options: one worker per core, at most 4 (each worker holds
    test databases of its own on every server). DBTOOLS_TEST_WORKERS sets the
    number (1: one process); -n among the arguments overrides it."""
    if any(arg.startswith(("-n", "--numprocesses")) for arg in extra):
        return []
    wanted = os.environ.get("DBTOOLS_TEST_WORKERS")
    count = int(wanted) if wanted else min(4, os.cpu_count() or 1)
    if count <= 1:
        return []
    # loadfile: a file's tests run on one worker, so a module's or a session's
    # costly fixture (the Wagtail lab's venv, in a folder of the checkout) is
    # made once. (loadgroup would do it per group, but pytest-xdist 3.8 cannot
    # rename pytest 9.2's test ids, so its groups are silently ignored.)
    return ["-n", str(count), "--dist", "loadfile"]


def test(extra: list[str]) -> None:
    python = venv()
    sys.exit(run(python, "-m", "pytest", *workers(extra), *ci_report(), *extra, check=False))


# Test files the Django 5.2 leg leaves out, with why: each tests a layer that
# makes no Django call whose behaviour differs between 5.2 and 6.1, or pins a
# Django of its own. DBTOOLS_DJANGO52_ALL=1 runs them on 5.2 too (the lab still
# pins its own Django).
MAIN_LEG_ONLY = {
    "tests/test_thirdparty_wagtail.py": "the Wagtail lab pins its own Django in a venv of its own",
    "tests/test_interrupts.py": "the fault matrix tests signals and processes",
    "tests/test_corpus.py": "the reviewed findings are those of Django 6.1's contrib migrations",
    "tests/test_storage.py": "the local folder and S3 (moto): files and HTTP",
    "tests/test_envelope.py": "gzip, zstd and age around the file",
    "tests/test_hostile.py": "damaged files, refused by the archive reader",
    "tests/test_copy_stream.py": "PostgreSQL's COPY and PgBouncer, through psycopg",
    "tests/test_docs.py": "the text of docs/",
    "tests/test_structure.py": "the shape of dbtools/",
    "tests/test_leftover_runs.py": "the test runs' own folders, databases and processes",
    "tests/test_masking.py": "the masking rules: functions of values, checked against model fields",
    "tests/test_migration_checks_sql.py": "RunSQL text read by pglast and sqlglot, not by Django",
    "tests/test_backup_masked.py": "masking comes after a row is read; the portable reads it "
    "goes through are test_backup.py's, which runs on 5.2",
}


def test_django52(extra: list[str]) -> None:
    python = venv(".venv-django52", django="django>=5.2,<5.3")
    left_out = list(MAIN_LEG_ONLY)
    env = dict(os.environ)
    if os.environ.get("DBTOOLS_DJANGO52_ALL") == "1":
        left_out = ["tests/test_thirdparty_wagtail.py"]
    else:
        # What differs between 5.2 and 6.1 is Django's own code, which the SQLite
        # run goes through; the servers' runs are the main leg's.
        env.setdefault("DBTOOLS_TEST_BACKENDS", "sqlite")
    ignore = [arg for path in left_out for arg in ("--ignore", path)]
    if os.environ.get("DBTOOLS_DJANGO52_ALL") != "1":
        # Mutated files are refused by the archive reader, as in test_hostile.py.
        ignore += [
            "--deselect",
            "tests/test_properties.py::test_mutated_files_fail_cleanly_and_change_nothing",
        ]
    print(f"Django 5.2 leg: leaving out {', '.join(left_out)} (CONTRIBUTING.md).", flush=True)
    if chosen := env.get("DBTOOLS_TEST_BACKENDS"):
        print(f"Django 5.2 leg: backends {chosen} (DBTOOLS_DJANGO52_ALL=1: all).", flush=True)
    sys.exit(
        run(
            python,
            "-m",
            "pytest",
            "tests/",
            *ignore,
            *workers(extra),
            *ci_report(),
            *extra,
            env=env,
            check=False,
        )
    )


def lint() -> None:
    python = venv()
    run(python, "-m", "ruff", "check", ".")
    run(python, "-m", "ruff", "format", "--check", ".")
    run(python, "-m", "mypy")


def main() -> None:
    commands = {"demo", "test", "lint", "test-django52"}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    command, extra = sys.argv[1], sys.argv[2:]
    if command == "demo":
        demo()
    elif command == "test":
        test(extra)
    elif command == "test-django52":
        test_django52(extra)
    else:
        lint()


if __name__ == "__main__":
    main()
