"""Every test that takes `alias` runs once per backend, on a real server.

sqlite always runs; postgresql and mariadb run when TEST_POSTGRES_URL and
TEST_MARIADB_URL are set, or when a server answers on the default local port
(tests/settings.py). Locally a missing backend's tests are left out with one
line saying so; under CI=true they run and fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests import fast_flush
from tests.leftover_runs import remove_dead_databases, remove_dead_folders

fast_flush.install()

BACKENDS = {"sqlite": "default", "postgresql": "postgresql", "mariadb": "mariadb"}
URL_VARIABLES = {"postgresql": "TEST_POSTGRES_URL", "mariadb": "TEST_MARIADB_URL"}
IN_CI = os.environ.get("CI") == "true"
# A bounded run by choice (the Django 5.2 leg of CI): the tests parametrized for
# the backends not named are left out at collection, said in the header.
CHOSEN = [b for b in os.environ.get("DBTOOLS_TEST_BACKENDS", "").split(",") if b.strip()]
# Under CI the few costliest matrices run on fewer backends (ci_backends);
# DBTOOLS_FULL_MATRIX=1 runs them whole.
BOUNDED = IN_CI and os.environ.get("DBTOOLS_FULL_MATRIX") != "1"
ROOT = Path(__file__).resolve().parent.parent


def missing_reason(backend: str) -> str | None:
    if BACKENDS[backend] in settings.DATABASES:
        return None
    variable = URL_VARIABLES[backend]
    return f"{variable} is not set and no server answered on its default local port"


def found_locally(backend: str) -> bool:
    return os.environ.get(f"DBTOOLS_TESTS_FOUND_{URL_VARIABLES.get(backend)}") == "1"


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for backend in BACKENDS:
        reason = missing_reason(backend)
        if CHOSEN and backend not in CHOSEN:
            state = f"left out: DBTOOLS_TEST_BACKENDS={','.join(CHOSEN)}"
        elif reason:
            state = f"NOT RUN: {reason}"
        elif found_locally(backend):
            state = f"on (found {os.environ[URL_VARIABLES[backend]]}; set {URL_VARIABLES[backend]} to choose)"
        else:
            state = "on"
        lines.append(f"backend {backend}: {state}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "alias" in metafunc.fixturenames:
        wanted = getattr(metafunc.function, "backends", list(BACKENDS))
        if BOUNDED and hasattr(metafunc.function, "ci_backends"):
            wanted = [b for b in wanted if b in metafunc.function.ci_backends]
        metafunc.parametrize(
            "alias", [pytest.param(BACKENDS[b], id=b) for b in wanted], indirect=True
        )


NOT_RUN: dict[str, int] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each backend's tests for its database; a backend that is not there
    has its tests left out with one line in the summary (a failure under CI),
    as has one DBTOOLS_TEST_BACKENDS does not name."""
    if unknown := sorted(set(CHOSEN) - set(BACKENDS)):
        raise pytest.UsageError(
            f"DBTOOLS_TEST_BACKENDS names {', '.join(unknown)}: the backends are {', '.join(BACKENDS)}"
        )
    left_out = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "alias" not in callspec.params:
            continue
        alias = callspec.params["alias"]
        if CHOSEN and next(b for b, a in BACKENDS.items() if a == alias) not in CHOSEN:
            left_out.append(item)
            continue
        if alias not in settings.DATABASES:
            if not IN_CI:
                backend = next(b for b, a in BACKENDS.items() if a == alias)
                NOT_RUN[backend] = NOT_RUN.get(backend, 0) + 1
                left_out.append(item)
            continue
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("databases"):
            continue  # the test says which databases it needs (cross-backend tests)
        transactional = marker.kwargs.get("transaction", True) if marker else True
        item.add_marker(pytest.mark.django_db(transaction=transactional, databases=[alias]))
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in set(left_out)]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for backend, count in NOT_RUN.items():
        terminalreporter.write_line(
            f"backend {backend}: {count} tests not run: {missing_reason(backend)}", yellow=True
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    """What killed runs left (tests/leftover_runs.py) goes before this run starts."""
    remove_dead_folders()
    remove_dead_databases(settings.DATABASES)


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix() -> None:
    """pytest-django would add `_gwN` to the test databases' names in the worker
    only; tests/settings.py names them per worker already, so that the manage.py
    subprocesses a test starts find the same databases."""


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's own folder (SQLite files, default backups folder) goes with it."""
    shutil.rmtree(Path(settings.DATABASES["default"]["TEST"]["NAME"]).parent, ignore_errors=True)


@pytest.fixture
def alias(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    backend_name = next(b for b, a in BACKENDS.items() if a == name)
    reason = missing_reason(backend_name)
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but {backend_name}: {reason}")
        pytest.skip(reason)
    return name


def backends(*names: str):  # type: ignore[no-untyped-def]
    """Limit a test to some backends: @backends("postgresql")."""

    def mark(function):  # type: ignore[no-untyped-def]
        function.backends = list(names)
        return function

    return mark


def ci_backends(*names: str):  # type: ignore[no-untyped-def]
    """Under CI, run a costly test only on these backends (every backend with
    DBTOOLS_FULL_MATRIX=1, and outside CI): for a test whose backend-specific
    part the rest of the suite covers on every backend."""

    def mark(function):  # type: ignore[no-untyped-def]
        function.ci_backends = list(names)
        return function

    return mark


@pytest.fixture
def backup_dir(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path / "backups"
    settings.DBTOOLS = {"BACKUP_DIR": str(folder)}
    return folder


def manage_command(*args: str) -> list[str]:
    # --skip-checks: the model checks would connect to every configured
    # backend, including ones whose test database this run did not create.
    return [sys.executable, str(ROOT / "manage.py"), *args, "--skip-checks"]


def manage_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for manage.py run against the test databases."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DBTOOLS_TESTS_USE_TEST_DATABASES": "1",
        **(env or {}),
    }


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **popen):  # type: ignore[no-untyped-def]
    """Run manage.py in a subprocess against the test databases."""
    return subprocess.run(
        manage_command(*args),
        cwd=ROOT,
        env=manage_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pooler:
    address: str  # host:port
    log: Path

    def clients_seen(self) -> int:
        return self.log.read_text().count("login attempt")


def dies_with_the_run() -> None:
    """In a child before exec: the kernel ends it when the test run ends, even
    by SIGKILL, so a killed run leaves no pooler holding its test database."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """A real PgBouncer in transaction mode in front of the PostgreSQL test database,
    as Neon's -pooler endpoint is."""
    if "postgresql" not in settings.DATABASES:
        pytest.skip(missing_reason("postgresql"))
    exe = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if exe is None:
        if IN_CI:
            pytest.fail("CI=true but pgbouncer is not installed (apt-get install pgbouncer)")
        pytest.skip(
            "pgbouncer is not installed (apt-get install pgbouncer), so the pooler tests did not run"
        )
    from django.db import connections

    target = connections["postgresql"].settings_dict
    # Not under pytest's private tmp: pgbouncer runs as postgres and must reach it.
    folder = Path(tempfile.mkdtemp(prefix="dbtools-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    database = target["NAME"]
    user = target.get("USER") or "postgres"
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host={target.get("HOST") or "127.0.0.1"} port={target.get("PORT") or 5432} dbname={database} user={user}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
ignore_startup_parameters = extra_float_digits,options
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    as_user = {}
    if os.geteuid() == 0:
        # Dropped by Popen before dies_with_the_run(): pgbouncer's own -u
        # would change user after it, and the kernel forgets the death
        # signal when the user changes.
        as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        shutil.chown(folder, "postgres")
    process = subprocess.Popen(
        [exe, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=dies_with_the_run,
        **as_user,  # type: ignore[arg-type]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(
                    f"pgbouncer did not start: {process.stderr.read().decode() if process.stderr else ''}"
                )
            time.sleep(0.1)
    yield Pooler(f"127.0.0.1:{port}", folder / "pgbouncer.log")
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class S3:
    """One empty bucket of its own on the S3 server, and DBTOOLS['STORAGE'] pointing at it."""

    endpoint: str
    bucket: str
    prefix: str
    client: object

    @property
    def env(self) -> dict[str, str]:
        """What manage.py in a subprocess needs to use the same bucket (config/settings.py)."""
        return {
            "DBTOOLS_S3_BUCKET": self.bucket,
            "DBTOOLS_S3_PREFIX": self.prefix,
            "DBTOOLS_S3_ENDPOINT_URL": self.endpoint,
            "DBTOOLS_S3_REGION": "us-east-1",
        }

    def names(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/")  # type: ignore[attr-defined]
        return sorted(o["Key"].removeprefix(f"{self.prefix}/") for o in listed.get("Contents", []))

    def unfinished(self) -> list[str]:
        listed = self.client.list_multipart_uploads(Bucket=self.bucket)  # type: ignore[attr-defined]
        return sorted(u["Key"] for u in listed.get("Uploads", []))


def s3_storages(s3: S3) -> dict[str, dict[str, object]]:
    return {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "backups": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3.bucket,
                "location": s3.prefix,
                "endpoint_url": s3.endpoint,
                "region_name": "us-east-1",
            },
        },
    }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A real S3-compatible server over HTTP: moto's standalone server, in its own
    process on a free port (so two test runs on one machine never share one)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the moto S3 server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3(s3_server, settings, monkeypatch, tmp_path, request):  # type: ignore[no-untyped-def]
    import boto3

    for variable, value in {
        "AWS_ACCESS_KEY_ID": "dbtools-tests",
        "AWS_SECRET_ACCESS_KEY": "dbtools-tests",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(variable, value)
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"dbtools-{os.getpid()}-{abs(hash(request.node.nodeid)) % 10**8}"
    client.create_bucket(Bucket=bucket)
    store = S3(s3_server, bucket, "team/backups", client)
    settings.STORAGES = s3_storages(store)
    # BACKUP_DIR is set too, and must stay empty: nothing goes to local disk.
    settings.DBTOOLS = {"STORAGE": "backups", "BACKUP_DIR": str(tmp_path / "local-backups")}
    yield store
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
