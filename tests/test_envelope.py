"""Compression (gzip, zstd) and age encryption around the backup document."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import threading
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
import zstandard
from django.core.management import CommandError, call_command
from pyrage import x25519

from dbtools.archive import verify
from dbtools.archive.envelope import AGE_MAGIC, GZIP_MAGIC, ZSTD_MAGIC, identity_file
from dbtools.backup import backup_database
from dbtools.exceptions import ArchiveError, BackupError, ConfigurationError
from dbtools.restore import prepare_restore, restore_database
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import IN_CI, backends, run_manage
from tests.data import fill_edge_cases
from tests.helpers import comparable_tables, database_contents, read_backup


def age_cli() -> str:
    """The `age` command (Debian package `age`); CI installs it, so there it must be found."""
    found = shutil.which("age")
    if found is None:
        if IN_CI:
            pytest.fail("CI=true but the age command is missing (apt-get install age)")
        pytest.skip("the age command is not installed (apt-get install age)")
    return found


def make_key(folder: Path, name: str = "key.txt") -> SimpleNamespace:
    identity = x25519.Identity.generate()
    path = folder / name
    public = str(identity.to_public())
    path.write_text(f"# created: by a test\n# public key: {public}\n{identity}\n")
    path.chmod(0o600)
    return SimpleNamespace(identity=path, public=public)


@pytest.fixture
def key(tmp_path: Path) -> SimpleNamespace:
    return make_key(tmp_path)


@pytest.fixture
def encrypting(backup_dir, settings, key):  # type: ignore[no-untyped-def]
    settings.DBTOOLS = {**settings.DBTOOLS, "ENCRYPT_TO": [key.public]}
    return key


def decompress(data: bytes) -> bytes:
    if data.startswith(GZIP_MAGIC):
        return gzip.decompress(data)
    if data.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


# Compression -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compression", "magic", "suffix"),
    [("gzip", GZIP_MAGIC, ".json.gz"), ("zstd", ZSTD_MAGIC, ".json.zst")],
)
def test_each_compression_round_trips_exactly_and_is_told_by_content(
    alias, backup_dir, tmp_path, compression, magic, suffix
):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    plain = backup_database(using=alias)
    packed = backup_database(using=alias, compress=compression)
    data = packed.path.read_bytes()
    assert packed.path.name.endswith(suffix) and data.startswith(magic)
    assert packed.latest == backup_dir / f"db-backup-latest{suffix}"
    assert not (backup_dir / "db-backup-latest.json").exists()
    assert json.loads(decompress(data))["summary"]["rows"] == plain.rows
    # The name is not what tells a reader how to read it.
    renamed = tmp_path / "renamed.json"
    shutil.copy(packed.path, renamed)
    assert comparable_tables(read_backup(renamed)) == comparable_tables(read_backup(plain.path))
    restore_database(prepare_restore(renamed, using=alias), mode="replace")
    assert comparable_tables(database_contents(alias)) == comparable_tables(read_backup(plain.path))


@backends("sqlite")
def test_compress_without_a_name_means_zstd(alias, backup_dir):
    seed_shop(20)
    result = backup_database(compress=True)
    assert result.path.name.endswith(".json.zst")
    assert result.path.read_bytes().startswith(ZSTD_MAGIC)


@backends("sqlite")
def test_the_compress_setting_names_the_compression(alias, backup_dir, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "COMPRESS": "gzip"}
    assert backup_database().path.name.endswith(".json.gz")
    settings.DBTOOLS = {**settings.DBTOOLS, "COMPRESS": True}
    assert backup_database().path.name.endswith(".json.zst")


@backends("sqlite")
def test_an_output_name_decides_the_compression(alias, tmp_path, backup_dir):
    result = backup_database(output=tmp_path / "mine.json.zst")
    assert result.path.read_bytes().startswith(ZSTD_MAGIC) and result.latest is None
    with pytest.raises(
        ConfigurationError, match=r"^--compress gzip writes \.json\.gz, but x\.json\.zst"
    ):
        backup_database(output=tmp_path / "x.json.zst", compress="gzip")
    with pytest.raises(
        ConfigurationError, match=r"^Unknown compression 'lz4'; choose zstd or gzip"
    ):
        backup_database(compress="lz4")
    assert not (tmp_path / "x.json.zst").exists()


@backends("sqlite")
def test_a_command_line_compress_choice(alias, backup_dir):
    seed_shop(20)
    call_command("backupdb", "--compress", "gzip", verbosity=0)
    call_command("backupdb", "--compress", verbosity=0)
    names = sorted(p.name for p in backup_dir.iterdir())
    assert [n for n in names if n.startswith("db-backup-latest")] == ["db-backup-latest.json.zst"]
    assert sum(n.endswith(".json.gz") for n in names) == 1
    with pytest.raises(CommandError, match="Unknown compression 'bzip2'"):
        call_command("backupdb", "--compress", "bzip2", verbosity=0)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@backends("sqlite")
def test_a_damaged_compressed_backup_is_a_clean_error(alias, backup_dir, tmp_path, compression):
    seed_shop(300)
    path = backup_database(compress=compression).path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / f"bad.json{'.gz' if compression == 'gzip' else '.zst'}"
    bad.write_bytes(bytes(data))
    # Mostly the decompressor notices; a flip it decodes is caught by the checksums.
    with pytest.raises(ArchiveError, match=r"^bad\.json\.(gz|zst)[ :]"):
        verify(bad)
    cut = tmp_path / "cut.json"
    cut.write_bytes(path.read_bytes()[: len(data) // 2])
    with pytest.raises(
        ArchiveError, match=r"^cut\.json (is truncated|could not be read|holds nothing once)"
    ):
        verify(cut)


def zstd_writer(out):
    return zstandard.ZstdCompressor().stream_writer(out)


def gzip_writer(out):
    return gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9)


@backends("sqlite")
@pytest.mark.parametrize("suffix, writer", [(".zst", zstd_writer), (".gz", gzip_writer)])
def test_a_compression_bomb_is_refused_in_bounded_memory(alias, tmp_path, suffix, writer):
    import resource

    bomb = tmp_path / f"bomb.json{suffix}"
    with open(bomb, "wb") as out, writer(out) as packed:
        packed.write(b'{"format":')
        zeros = b"0" * (1 << 24)
        for _ in range(128):  # 2 GiB of one line, in at most about 2 MB of file
            packed.write(zeros)
    assert bomb.stat().st_size < 3_000_000
    with pytest.raises(ArchiveError, match=r"line 1 is longer than 67,108,864 bytes"):
        verify(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1_500_000  # KB: far from 2 GiB


@backends("sqlite")
def test_a_gzip_header_longer_than_the_readers_buffer_is_a_clean_error(alias, backup_dir):
    """A comment of 600 KB before the NUL that ends it: valid gzip, which the
    reader refuses (OverflowError) rather than buffering without end."""
    packed = bytearray(gzip.compress(b'{"format":"dbtools"}\n', mtime=0))
    packed[3] |= 16  # FCOMMENT: a NUL-terminated comment follows the 10-byte header
    hostile = bytes(packed[:10]) + b"c" * 600_000 + b"\0" + bytes(packed[10:])
    assert gzip.decompress(hostile).startswith(b'{"format"')
    backup_dir.mkdir(parents=True, exist_ok=True)
    path = backup_dir / "db-backup-2020-01-01T00-00-00-000Z.json.gz"
    path.write_bytes(hostile)
    with pytest.raises(ArchiveError, match=r"^db-backup-2020-01-01T00-00-00-000Z\.json\.gz "):
        verify(path)
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 backup\(s\) failed verification"):
        call_command("listbackups", "--verify", stdout=out)
    assert "DAMAGED" in out.getvalue()


# Encryption ------------------------------------------------------------------------


def test_an_encrypted_backup_holds_no_plaintext_and_restores_exactly(alias, encrypting):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    before = comparable_tables(database_contents(alias))
    result = backup_database(using=alias)
    data = result.path.read_bytes()
    assert result.path.name.endswith(".json.age") and data.startswith(AGE_MAGIC)
    assert result.latest is not None and result.latest.name == "db-backup-latest.json.age"
    email = m.User.objects.using(alias).order_by("pk").first().email
    assert email.encode() not in data and b'"format"' not in data

    m.Product.objects.using(alias).update(price=0)
    m.OrderItem.objects.using(alias).all().delete()
    with identity_file(encrypting.identity):
        restore_database(prepare_restore(None, using=alias), mode="replace")
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_encryption_and_zstd_together_still_stream(alias, encrypting):
    seed_shop(2000, using=alias)
    result = backup_database(using=alias, compress="zstd")
    assert result.path.name.endswith(".json.zst.age")
    with identity_file(encrypting.identity):
        assert comparable_tables(read_backup(result.path)) == comparable_tables(
            database_contents(alias)
        )


@backends("sqlite")
def test_the_age_cli_decrypts_a_dbtools_backup_to_the_documented_format(alias, encrypting):
    age = age_cli()
    seed_shop(200, using=alias)
    for compress in (False, "zstd"):
        result = backup_database(using=alias, compress=compress)
        out = subprocess.run(
            [age, "-d", "-i", str(encrypting.identity), str(result.path)],
            capture_output=True,
            check=True,
        )
        document = json.loads(decompress(out.stdout))
        assert document["format"] == "dbtools-backup" and document["version"] == 1
        assert document["summary"]["rows"] == result.rows


@backends("sqlite")
def test_a_backup_encrypted_with_the_age_cli_restores(alias, backup_dir, key, tmp_path):
    age = age_cli()
    seed_shop(200, using=alias)
    plain = backup_database(using=alias)
    for armor in ([], ["--armor"]):
        sealed = tmp_path / f"by-cli{len(armor)}.json.age"
        subprocess.run(
            [age, *armor, "-r", key.public, "-o", str(sealed), str(plain.path)], check=True
        )
        with identity_file(key.identity):
            assert read_backup(sealed) == read_backup(plain.path)


def test_a_wrong_key_is_one_line_and_changes_nothing(alias, encrypting, tmp_path):
    seed_shop(200, using=alias)
    path = backup_database(using=alias).path
    m.Product.objects.using(alias).update(price=0)
    before = comparable_tables(database_contents(alias))
    other = make_key(tmp_path, "other.txt")
    done = run_manage(
        "restoredb", "--file", str(path), "--replace", "--no-input", "--database", alias,
        "--identity", str(other.identity),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"CommandError: {path.name} cannot be opened with the identity given: it was encrypted "
        f"to another key (give the identity that matches DBTOOLS['ENCRYPT_TO'] when it was "
        f"written), or its header is damaged (then use another backup)."
    ]
    assert comparable_tables(database_contents(alias)) == before


@backends("sqlite")
def test_no_identity_or_a_bad_identity_file_is_a_clear_error(alias, encrypting, tmp_path):
    seed_shop(20)
    path = backup_database().path
    with pytest.raises(
        CommandError, match=r"is encrypted with age and no identity was given; pass --identity FILE"
    ):
        call_command("restoredb", "--file", str(path), "--no-input", verbosity=0)
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    with pytest.raises(CommandError, match=r"is not an age identity file"):
        call_command("restoredb", "--file", str(path), "--identity", str(not_a_key), "--no-input")
    with pytest.raises(CommandError, match=r"the identity file .*nowhere\.txt cannot be read"):
        call_command("restoredb", "--file", str(path), "--identity", str(tmp_path / "nowhere.txt"))


@pytest.mark.parametrize("damage", ["flip a byte", "cut in half", "cut the last chunk's end"])
@backends("sqlite")
def test_a_damaged_or_cut_encrypted_backup_is_refused(alias, encrypting, tmp_path, damage):
    seed_shop(3000)
    data = bytearray(backup_database().path.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "cut in half":
        data = data[: len(data) // 2]
    else:
        data = data[:-10]
    bad = tmp_path / "bad.json.age"
    bad.write_bytes(bytes(data))
    before = threading.active_count()
    with identity_file(encrypting.identity), pytest.raises(ArchiveError, match=r"^bad\.json\.age "):
        verify(bad)
    assert threading.active_count() == before  # the decrypting thread has ended


@backends("sqlite")
def test_an_interrupted_encrypted_backup_leaves_nothing(alias, encrypting, backup_dir):
    seed_shop(300)

    def stop(label: str, done: int, expected: int) -> None:
        if label == "shop.Product":
            raise KeyboardInterrupt

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        backup_database(progress=stop)
    assert list(backup_dir.iterdir()) == []
    assert threading.active_count() == before


@backends("sqlite")
def test_listing_encrypted_backups_needs_the_identity_to_verify(alias, encrypting, backup_dir):
    seed_shop(20)
    path = backup_database().path
    out = run_manage("listbackups", "--folder", str(backup_dir))
    assert out.returncode == 0
    assert f"{path.name}  " in out.stdout and "encrypted (age): give --identity FILE" in out.stdout
    out = run_manage("listbackups", "--folder", str(backup_dir), "--verify")
    assert out.returncode == 1 and "could not be verified without their identity" in out.stderr
    out = run_manage(
        "listbackups",
        "--folder",
        str(backup_dir),
        "--verify",
        "--identity",
        str(encrypting.identity),
    )
    assert out.returncode == 0, out.stderr
    assert "21 rows" in out.stdout or "verified <- latest" in out.stdout


@backends("sqlite")
def test_keep_without_the_identity_counts_by_name_and_never_deletes_a_partial_one(
    alias, encrypting, backup_dir
):
    seed_shop(20)
    partial = backup_database(only=["shop.Product"]).path
    assert partial.name.startswith("db-backup-partial-")
    fulls = [backup_database().path for _ in range(3)]
    backup_database(keep=2)
    left = {p.name for p in backup_dir.iterdir()}
    assert partial.name in left and fulls[2].name in left
    assert fulls[0].name not in left and fulls[1].name not in left


@backends("sqlite")
def test_encryption_settings_and_names_are_checked(alias, backup_dir, settings, tmp_path, key):
    from dbtools.checks import check_settings

    settings.DBTOOLS = {"ENCRYPT_TO": key.public, "IDENTITY": 7}
    assert [m.msg for m in check_settings()] == [
        "DBTOOLS['ENCRYPT_TO'] must be a list of age public keys (each starts with age1; "
        f"`age-keygen` makes a pair), not {key.public!r}.",
        "DBTOOLS['IDENTITY'] must be the path of an age identity file, not 7.",
    ]
    settings.DBTOOLS = {"BACKUP_DIR": str(backup_dir), "ENCRYPT_TO": ["age1nope"]}
    with pytest.raises(
        ConfigurationError, match=r"holds 'age1nope'…, which is not an age public key"
    ):
        backup_database()
    settings.DBTOOLS = {"BACKUP_DIR": str(backup_dir), "ENCRYPT_TO": [key.public]}
    with pytest.raises(ConfigurationError, match=r"would be encrypted .* name it x\.json\.age"):
        backup_database(output=tmp_path / "x.json")
    settings.DBTOOLS = {"BACKUP_DIR": str(backup_dir)}
    with pytest.raises(
        ConfigurationError,
        match=r"x\.json\.age ends in \.age, but DBTOOLS\['ENCRYPT_TO'\] is empty",
    ):
        backup_database(output=tmp_path / "x.json.age")
    assert not list(tmp_path.glob("x.json*"))


@backends("sqlite")
def test_a_failing_encryption_is_a_backup_error_and_keeps_nothing(
    alias, encrypting, backup_dir, monkeypatch
):
    import pyrage

    def broken(reader, writer, recipients):  # type: ignore[no-untyped-def]
        reader.read(10)
        raise pyrage.EncryptError("disk on fire")

    seed_shop(20)
    monkeypatch.setattr(pyrage, "encrypt_io", broken)
    with pytest.raises(BackupError, match=r"encryption failed: disk on fire\. Nothing was kept"):
        backup_database()
    assert list(backup_dir.iterdir()) == []


@backends("postgresql")
def test_an_encrypted_backup_spools_no_plaintext(alias, encrypting, monkeypatch):
    from dbtools.backends.pg_reads import HelperReaders

    spooled: list[str] = []
    real_spool = HelperReaders.spool
    monkeypatch.setattr(
        HelperReaders,
        "spool",
        lambda self, table, c: spooled.append(table.label) or real_spool(self, table, c),
    )
    seed_shop(2000, using=alias)
    backup_database(using=alias)
    assert spooled == []  # a helper's spool files would hold rows in the clear
    backup_database(using=alias, encrypt_to=())
    assert spooled  # and a plain backup still uses it


@backends("sqlite")
def test_an_identity_file_others_can_read_is_warned_about(alias, encrypting, backup_dir, settings):
    seed_shop(20, using=alias)
    backup_database(using=alias)
    key = encrypting.identity
    warning = (
        f"WARNING: UNPROTECTED IDENTITY FILE: permissions 0644 for {key} are too open; it opens "
        f"every encrypted backup, so it must be readable by its owner only (chmod 600 {key}).\n"
    )
    key.chmod(0o644)
    err = StringIO()
    call_command("listbackups", "--verify", "--identity", str(key), stdout=StringIO(), stderr=err)
    assert err.getvalue() == warning
    settings.DBTOOLS = {**settings.DBTOOLS, "IDENTITY": str(key)}  # the setting alike
    err = StringIO()
    call_command("listbackups", "--verify", stdout=StringIO(), stderr=err)
    assert err.getvalue() == warning
    key.chmod(0o600)
    err = StringIO()
    call_command("listbackups", "--verify", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


@backends("sqlite")
def test_a_damaged_recipient_stanza_is_not_called_another_key(alias, encrypting, tmp_path):
    """age says "no matching keys" for a damaged stanza too: where the header shows the
    damage it is named, and where it cannot be told from another key both are named."""
    seed_shop(20)
    data = backup_database().path.read_bytes()
    assert data.startswith(AGE_MAGIC + b"-> X25519 ")
    share = len(AGE_MAGIC) + len(b"-> X25519 ")
    damaged = {
        "type.json.age": data.replace(b"-> X25519 ", b"-> Y25519 ", 1),
        # Another base64 letter: a flipped bit could leave the alphabet, which age
        # reports as an invalid header instead (the key is new every run).
        "share.json.age": data[:share]
        + (b"B" if data[share] == ord("A") else b"A")
        + data[share + 1 :],
    }
    said = {}
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        with identity_file(encrypting.identity), pytest.raises(ArchiveError) as raised:
            verify(tmp_path / name)
        said[name] = str(raised.value)
    assert said == {
        "type.json.age": (
            "type.json.age holds no stanza for an age X25519 key, the kind "
            "DBTOOLS['ENCRYPT_TO'] holds: its header is damaged (then use another backup), or "
            "it was encrypted to another kind of key (an SSH key, a passphrase)."
        ),
        "share.json.age": (
            "share.json.age cannot be opened with the identity given: it was encrypted to "
            "another key (give the identity that matches DBTOOLS['ENCRYPT_TO'] when it was "
            "written), or its header is damaged (then use another backup)."
        ),
    }
