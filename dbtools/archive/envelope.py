"""What wraps a backup document on disk: gzip or zstd compression, then age encryption.

    writing:  JSON lines -> [gzip | zstd] -> [age] -> file
    reading:  file -> [age] -> [gzip | zstd] -> JSON lines

Readers tell each layer by its first bytes, never by the file name, so a
renamed file still restores. Everything streams: age runs in a thread that
reads from (or writes to) a pipe, so neither side holds more than the pipe's
buffer and a chunk of age's STREAM. The checksums in the document are over
the plaintext, so they are checked after decryption and decompression.

zstandard and pyrage are imported only where a file uses them: a project
that never compresses with zstd or encrypts does not need them installed.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

from isal import igzip, isal_zlib

from ..conf import COMPRESSIONS, get_settings
from ..exceptions import ArchiveError, ConfigurationError
from ..storage.base import BackupFile, open_file

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
try:
    from zstandard import ZstdError
except ImportError:  # then no zstd file can be opened, and none raises it

    class ZstdError(Exception):  # type: ignore[no-redef]
        pass


# What a damaged compressed file raises while it is read (BadGzipFile is an
# OSError; isal raises OverflowError for a gzip header longer than its buffer,
# and its stubs call its error class an instance).
DEFLATE_ERROR = cast(type[Exception], isal_zlib.error)
READ_ERRORS = (OSError, EOFError, OverflowError, DEFLATE_ERROR, zlib.error, ZstdError)
SUFFIXES = {"gzip": ".gz", "zstd": ".zst"}
AGE_SUFFIX = ".age"

# An identity file given for this call (restoredb --identity), over DBTOOLS['IDENTITY'].
_identity_override: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "dbtools_identity", default=None
)


def file_suffix(compression: str | None, encrypted: bool) -> str:
    """.json, .json.gz, .json.zst, each with .age after it when encrypted."""
    return ".json" + SUFFIXES.get(compression or "", "") + (AGE_SUFFIX if encrypted else "")


def backup_suffix(name: str) -> str | None:
    """The suffix of a backup file name, if it has one dbtools writes."""
    for compression in (None, *COMPRESSIONS):
        for encrypted in (True, False):
            suffix = file_suffix(compression, encrypted)
            if name.endswith(suffix):
                return suffix
    return None


def is_age(head: bytes) -> bool:
    """Whether a file starting with these bytes is age-encrypted (binary or armored)."""
    return head.startswith((AGE_MAGIC, AGE_ARMOR_MAGIC))


HEADER_READ = 64 * 1024  # an age header (a stanza per recipient) is far shorter


def is_encrypted(path: BackupFile) -> bool:
    try:
        with open_file(path) as f:
            return is_age(f.read(len(AGE_ARMOR_MAGIC)))
    except OSError:
        return False


def compression_of(head: bytes) -> str | None:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


# Keys ------------------------------------------------------------------------------


@contextlib.contextmanager
def identity_file(path: str | Path | None) -> Iterator[None]:
    """Read encrypted backups with this identity file for the duration (None: the setting)."""
    token = _identity_override.set(Path(path) if path else None)
    try:
        yield
    finally:
        _identity_override.reset(token)


def recipients(keys: Sequence[str]) -> list[Any]:
    """age recipients from their public keys (age1...), or a one-line error."""
    pyrage = _pyrage()
    parsed = []
    for key in keys:
        try:
            parsed.append(pyrage.x25519.Recipient.from_str(key.strip()))
        except pyrage.RecipientError as exc:
            raise ConfigurationError(
                f"DBTOOLS['ENCRYPT_TO'] holds {key[:16]!r}…, which is not an age public key "
                f"({exc}); it must start with age1 (make a pair with `age-keygen`)."
            ) from None
    return parsed


def identity_exposure() -> str | None:
    """A warning if the identity file in effect can be read by anyone but its owner, as
    ssh gives for a private key: it opens every encrypted backup."""
    try:
        path = _identity_override.get() or get_settings().identity
        mode = path.stat().st_mode if path else None
    except (ConfigurationError, OSError):  # said where the settings or the file are read
        return None
    if mode is None or not mode & 0o077:
        return None
    return (
        f"UNPROTECTED IDENTITY FILE: permissions {mode & 0o777:04o} for {path} are too open; it "
        f"opens every encrypted backup, so it must be readable by its owner only "
        f"(chmod 600 {path})."
    )


def can_decrypt() -> bool:
    """Whether an identity was given (not whether it fits any file)."""
    return bool(_identity_override.get() or get_settings().identity)


def identities() -> list[Any]:
    """The age identities to decrypt with, from --identity or DBTOOLS['IDENTITY']."""
    path = _identity_override.get() or get_settings().identity
    if path is None:
        raise ArchiveError(
            "is encrypted with age and no identity was given; pass --identity FILE "
            "(the file `age-keygen` wrote) or set DBTOOLS['IDENTITY']."
        )
    try:
        text = path.read_text()
    except OSError as exc:
        raise ArchiveError(
            f"is encrypted, and the identity file {path} cannot be read: {exc.strerror or exc}."
        ) from None
    pyrage = _pyrage()
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ArchiveError(
                f"is encrypted, and {path} is not an age identity file (a line that is not "
                f"AGE-SECRET-KEY-1…). Give the file `age-keygen` wrote."
            ) from None
    if not keys:
        raise ArchiveError(f"is encrypted, and the identity file {path} holds no key.")
    return keys


def _pyrage() -> Any:
    try:
        import pyrage
    except ImportError:
        raise ConfigurationError(
            "Encrypted backups need pyrage: pip install 'django-dbtools[encrypt]'."
        ) from None
    return pyrage


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError:
        raise ConfigurationError(
            "zstd backups need zstandard: pip install 'django-dbtools[zstd]'."
        ) from None
    return zstandard


# Writing ---------------------------------------------------------------------------


class SealedWriter:
    """A write-only stream that compresses and encrypts into `raw`.

    `close()` finishes every layer (and reports an encryption failure); it
    never closes `raw`, whose owner fsyncs and renames it.
    """

    def __init__(
        self, raw: IO[bytes], compression: str | None, to: Sequence[Any] | None = None
    ) -> None:
        if compression not in (None, *COMPRESSIONS):  # before a thread is started for nothing
            raise ConfigurationError(f"Unknown compression {compression!r}; use gzip or zstd.")
        self._encrypter = AgeEncrypter(raw, to) if to else None
        below: IO[bytes] = self._encrypter.stream if self._encrypter else raw
        self._compressor: Any = None
        if compression == "gzip":
            # ISA-L compresses faster than zlib at a like ratio (docs/benchmarks.md,
            # "gzip by ISA-L"); what it writes is plain gzip, which any reader reads.
            self._compressor = igzip.GzipFile(  # type: ignore[no-untyped-call]
                filename="", mode="wb", fileobj=below, compresslevel=1, mtime=0
            )
        elif compression == "zstd":
            self._compressor = (
                _zstandard()
                .ZstdCompressor(level=3, write_checksum=True)
                .stream_writer(below, closefd=False)
            )
        self._top: Any = self._compressor or below

    def write(self, data: bytes) -> None:
        try:
            self._top.write(data)
        except BrokenPipeError:
            # The encrypting thread stopped reading: its own error is the one to tell.
            if self._encrypter is not None:
                self._encrypter.finish()
            raise

    def close(self) -> None:
        try:
            if self._compressor is not None:
                self._compressor.close()
        except BrokenPipeError:
            if self._encrypter is None:
                raise
        if self._encrypter is not None:
            self._encrypter.finish()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._compressor is not None:
                self._compressor.close()
        if self._encrypter is not None:
            self._encrypter.abandon()


class AgeEncrypter:
    """`stream` takes plaintext; a thread encrypts it into `raw` as it arrives."""

    def __init__(self, raw: IO[bytes], to: Sequence[Any]) -> None:
        read_end, write_end = os.pipe()
        self._source = os.fdopen(read_end, "rb", buffering=0)
        self.stream: IO[bytes] = os.fdopen(write_end, "wb", buffering=1024 * 1024)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(raw, list(to)), name="dbtools-age-encrypt", daemon=True
        )
        self._thread.start()

    def _run(self, raw: IO[bytes], to: list[Any]) -> None:
        try:
            _pyrage().encrypt_io(self._source, raw, to)
        except BaseException as exc:  # handed to the writer's thread in finish()
            self._error = exc
        finally:
            self._source.close()

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # the thread ended early; its error says why
            self.stream.close()
        self._thread.join()
        if self._error is not None:
            raise OSError(f"encryption failed: {self._error}") from self._error

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        self._thread.join()


# Reading ---------------------------------------------------------------------------


def open_plaintext(raw: IO[bytes], name: str) -> IO[bytes]:
    """The backup document's bytes, from `raw`'s start, through whatever layers it has.

    The result has `readline(limit)`; closing it never closes `raw`.
    """
    raw.seek(0)
    head = raw.read(len(AGE_ARMOR_MAGIC))
    raw.seek(0)
    source: IO[bytes] = raw
    if is_age(head):
        try:
            keys = identities()
        except ArchiveError as exc:
            raise ArchiveError(f"{name} {exc}") from None
        source = io.BufferedReader(AgeDecrypter(raw, keys, name), 1024 * 1024)
        try:
            head = source.peek(len(ZSTD_MAGIC))[: len(ZSTD_MAGIC)]  # a wrong key fails here
        except BaseException:
            source.close()
            raise
        if not head:
            source.close()
            raise ArchiveError(f"{name} is encrypted and holds nothing; it is not a backup.")
    compression = compression_of(head)
    if compression == "gzip":
        unpacked = igzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[no-untyped-call]
        return cast(IO[bytes], _Closing(unpacked, source, raw))
    if compression == "zstd":
        # zstandard's stream reader hands out at most what is asked for, so a
        # small file that unpacks to gigabytes (a zstd bomb) cannot fill memory;
        # a cut file ends early, and the document's own structure says so.
        frames = (
            _zstandard()
            .ZstdDecompressor()
            .stream_reader(source, read_across_frames=True, closefd=False)
        )
        return cast(IO[bytes], _Closing(io.BufferedReader(frames, 1024 * 1024), source, raw))
    return source if source is raw else cast(IO[bytes], _Closing(source, source, raw))


class _Closing(io.RawIOBase):
    """The top layer; closing it closes the layers below it, down to (not including) `raw`."""

    def __init__(self, top: Any, below: Any, raw: IO[bytes]) -> None:
        self._top, self._below, self._raw = top, below, raw

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> bytes:
        line: bytes = self._top.readline(-1 if size is None else size)
        return line

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._top.read(size)
        return data

    def close(self) -> None:
        for layer in (self._top, self._below):
            if layer is not self._raw:
                with contextlib.suppress(Exception):
                    layer.close()
        super().close()


class AgeDecrypter(io.RawIOBase):
    """The plaintext of an age file, decrypted by a thread as it is read.

    A wrong key fails on the header, before the first byte comes out; a
    damaged or cut file fails when its chunk is reached (age authenticates
    each 64 KiB chunk and the last one is marked), as an ArchiveError.
    """

    def __init__(self, raw: IO[bytes], keys: Sequence[Any], name: str) -> None:
        self._name = name
        self._raw = raw
        read_end, write_end = os.pipe()
        self._pipe = os.fdopen(read_end, "rb", buffering=0)
        self._sink = os.fdopen(write_end, "wb", buffering=0)
        self._error: BaseException | None = None
        self._header_read = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(raw, list(keys)), name="dbtools-age-decrypt", daemon=True
        )
        self._thread.start()

    def _run(self, raw: IO[bytes], keys: list[Any]) -> None:
        try:
            _pyrage().decrypt_io(raw, self._sink, keys)
        except BaseException as exc:  # raised to the reader when it reaches the end
            self._error = exc
        finally:
            with contextlib.suppress(OSError):
                self._sink.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._pipe.readinto(buffer)
        if not n:
            self._thread.join()
            if self._error is not None and not isinstance(self._error, BrokenPipeError):
                raise ArchiveError(self._explain(self._error))
        return n or 0

    def _explain(self, error: BaseException) -> str:
        text = str(error)
        if "No matching keys" in text:
            # age says so for a damaged recipient stanza too: a header that still parses
            # cannot be told from another key's, so both are named.
            try:
                self._raw.seek(0)
                head = self._raw.read(HEADER_READ)
            except OSError:
                head = b""
            if head.startswith(AGE_MAGIC) and b"\n-> X25519 " not in head.split(b"\n---", 1)[0]:
                return (
                    f"{self._name} holds no stanza for an age X25519 key, the kind "
                    f"DBTOOLS['ENCRYPT_TO'] holds: its header is damaged (then use another "
                    f"backup), or it was encrypted to another kind of key (an SSH key, a passphrase)."
                )
            return (
                f"{self._name} cannot be opened with the identity given: it was encrypted to "
                f"another key (give the identity that matches DBTOOLS['ENCRYPT_TO'] when it was "
                f"written), or its header is damaged (then use another backup)."
            )
        return f"{self._name} could not be decrypted ({text}): the file is damaged or cut. Use another backup."

    def close(self) -> None:
        if not self.closed:
            self._pipe.close()  # the thread's next write fails, and it ends
            self._thread.join()
        super().close()
