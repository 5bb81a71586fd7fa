"""Backups in an S3 bucket named in Django's STORAGES.

django-storages' S3Storage (AWS, or any S3-compatible server) is served here,
through the storage's own boto3 connection and settings (bucket, location,
credentials, endpoint, object parameters), but not through `Storage.save()` or
`S3File`: neither can abandon an upload, and that is what keeps a failed backup
from looking finished.

Writing uses S3's multipart upload: a part leaves as soon as it fills, so memory
holds one part and nothing is written to local disk. The object exists only
once the upload completes, whole; a failed backup aborts its upload, and one
killed half-way leaves an unfinished upload that no listing shows (S3's
AbortIncompleteMultipartUpload lifecycle rule clears them; listbackups counts
them). `latest` is a server-side copy made after that, so it never points at a
partial backup either.

Reading streams the object with ranged GETs pinned to the ETag it was listed
with: a restore reads the very object it checked, or fails, even if a newer
backup takes the name meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..display import sentence
from ..exceptions import ArchiveError, BackupError, ConfigurationError
from .base import BackupRef, BackupStore

# S3 wants parts of 5 MiB or more (all but the last) and at most 10,000 of them.
# The smallest keeps memory lowest (botocore holds a few copies of the part in
# flight: ~30 MB measured at 5 MiB, ~40 MB at 8 MiB). Parts grow by PART_SIZE
# every 1,000, so an object can reach ~270 GiB (5 MiB parts for the first 5 GiB).
PART_SIZE = 5 * 1024 * 1024
PARTS_PER_STEP = 1000
MAX_PARTS = 10_000
COPY_OF = "dbtools-copy-of"
NOTHING_KEPT = " Nothing was kept; earlier backups are untouched."
PUBLIC_ACLS = {
    "public-read",
    "public-read-write",
    "authenticated-read",
}  # object metadata on `latest`: the backup it is a copy of


@dataclass(frozen=True)
class StoredBackup:
    """A backup object in a store: what a Path is for a backup on local disk."""

    store: S3Store
    name: str  # the file name, below the storage's location
    size: int
    etag: str
    copy_of: str | None = None  # for `latest`: the name of the backup it copies

    def __str__(self) -> str:
        return self.store.url(self.name)

    def open_stream(self) -> IO[bytes]:
        return io.BufferedReader(ObjectReader(self), 1024 * 1024)

    def holds(self, backup: BackupRef) -> bool:
        return isinstance(backup, StoredBackup) and (
            self.copy_of == backup.name or self.name == backup.name
        )

    def newness(self) -> str:
        return self.copy_of or ""  # the copied backup's name starts with its time

    def delete(self) -> None:
        self.store.delete(self)

    def describe(self) -> str:
        return str(self)


def s3_storage_class() -> type | None:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages (or boto3) is not installed: no S3 storage exists
        return None
    return S3Storage  # type: ignore[no-any-return]


def _client_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _cause(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    if error.get("Code"):
        return f"{error['Code']}: {error.get('Message') or 'no message'}"
    return without_password(" ".join(str(exc).split()) or type(exc).__name__)


def without_password(text: str) -> str:
    """`text` with the password of every URL in it (scheme://user:password@host) masked:
    botocore names the endpoint URL, as configured, in its connection errors."""
    return re.sub(r"(://[^/\s:@]*:)[^/\s@]*@", r"\1***@", text)


class S3Store(BackupStore):
    """The backups in one S3 bucket, below the storage's `location`."""

    def __init__(self, alias: str, storage: Any) -> None:
        acl = storage.get_object_parameters("").get("ACL") or storage.default_acl
        if acl in PUBLIC_ACLS:
            raise ConfigurationError(
                f"STORAGES[{alias!r}] gives every object the ACL {acl!r}, so every backup (every "
                f"row of the database) would be readable by others. Set its default_acl to "
                f"None or 'private' (or give backups a storage of their own)."
            )
        self.alias = alias
        self.storage = storage
        self.bucket: str = storage.bucket_name
        location = (storage.location or "").strip("/")
        self.prefix = f"{location}/" if location else ""

    def __str__(self) -> str:
        return self.url("")

    def describe(self) -> str:
        return str(self)

    @property
    def folder(self) -> None:
        return None

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    @property
    def client(self) -> Any:
        return self.storage.connection.meta.client

    def key(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise ArchiveError(
                f"{name!r} is not a backup name in {self}: give a file name such as "
                f"db-backup-latest.json (`manage.py listbackups` shows them)."
            )
        return self.prefix + name

    def error(self, doing: str, exc: BaseException) -> str:
        return (
            f"{doing} {self} failed: {sentence(_cause(exc))} Check STORAGES[{self.alias!r}] (bucket, "
            f"endpoint_url, credentials) and that the server is reachable."
        )

    @contextlib.contextmanager
    def _errors(
        self, doing: str, error: type[Exception] = ArchiveError, then: str = ""
    ) -> Iterator[None]:
        try:
            yield
        except _client_errors() as exc:
            raise error(f"{self.error(doing, exc)}{then}") from exc

    # Reading ----------------------------------------------------------------------

    def files(self) -> list[BackupRef]:
        """Every object directly below the location (not in "sub-folders")."""
        found: list[BackupRef] = []
        with self._errors("Listing"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            )
            for page in pages:
                for entry in page.get("Contents", ()):
                    name = entry["Key"][len(self.prefix) :]
                    if name:
                        found.append(StoredBackup(self, name, entry["Size"], entry["ETag"]))
        return found

    def get(self, name: str, uploading: bool = False) -> StoredBackup | None:
        """The object `name`, or None. `uploading`: asked by a backup on its way up,
        whose failure is an upload's, not a read's."""
        key = self.key(name)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except _client_errors() as exc:
            if _status(exc) == 404:
                return None
            if uploading:
                raise BackupError(
                    f"{self.error(f'Uploading {name} to', exc)}{NOTHING_KEPT}"
                ) from exc
            raise ArchiveError(self.error(f"Reading {name} in", exc)) from exc
        copy_of = head.get("Metadata", {}).get(COPY_OF)
        return StoredBackup(self, name, head["ContentLength"], head["ETag"], copy_of)

    def present(self, names: Collection[str]) -> list[BackupRef]:
        """One listing, then a HEAD for each found: with whose copy it is, for `latest`."""
        listed = [f.name for f in self.files() if f.name in names]
        return [f for name in listed if (f := self.get(name))]

    def named(self, name: str) -> StoredBackup | None:
        """Only a plain name: nothing outside the location."""
        return self.get(Path(name).name) if name == Path(name).name else None

    def taken(self, name: str) -> bool:
        return self.get(name, uploading=True) is not None

    def leftovers(self) -> list[str]:
        return self.unfinished_uploads()

    def leftover_warning(self, name: str) -> str:
        return (
            f"  {name}: an upload that never completed (a backup was interrupted). It is "
            f"no backup and the bucket lists no such object, but S3 keeps (and bills) its "
            f"parts until they are aborted: a lifecycle rule with "
            f"AbortIncompleteMultipartUpload does that."
        )

    def unfinished_uploads(self) -> list[str]:
        """Names of backups whose upload started and never completed (a killed backupdb)."""
        names = []
        with self._errors("Listing unfinished uploads in"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                names += [u["Key"][len(self.prefix) :] for u in page.get("Uploads", ())]
        return sorted(n for n in names if n and "/" not in n)

    # Writing ----------------------------------------------------------------------

    def prepare(self) -> list[str]:
        return []

    def writer(self, name: str) -> MultipartUpload:
        return MultipartUpload(self, name)

    def publish_copy(self, source: BackupRef, name: str) -> StoredBackup | None:
        """Make `name` a copy of `source`, server-side; it appears whole or not at all."""
        with self._errors(f"Copying {source.name} to {name} in", BackupError):
            self.client.copy(
                {"Bucket": self.bucket, "Key": self.key(source.name)},
                self.bucket,
                self.key(name),
                ExtraArgs={
                    **self.object_parameters(name),
                    "Metadata": {COPY_OF: source.name},
                    "MetadataDirective": "REPLACE",
                },
            )
        return self.get(name)  # with whose copy it is

    def delete(self, backup: StoredBackup) -> None:
        with self._errors(f"Deleting {backup.name} from", BackupError):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(backup.name))

    def object_parameters(self, name: str) -> dict[str, Any]:
        """The storage's own object parameters (AWS_S3_OBJECT_PARAMETERS, ACL), plus a
        content type. No Content-Encoding: a .json.gz is a gzip file, and must not be
        unpacked by whatever downloads it."""
        params: dict[str, Any] = dict(self.storage.get_object_parameters(self.key(name)))
        params.setdefault(
            "ContentType",
            "application/json" if name.endswith(".json") else "application/octet-stream",
        )
        if "ACL" not in params and getattr(self.storage, "default_acl", None):
            params["ACL"] = self.storage.default_acl
        return params


class MultipartUpload:
    """A file-like sink that uploads as it goes; `commit()` publishes, `abort()` leaves nothing.

    One part is uploaded by a thread while the next fills, so reading the
    database and the network overlap; memory holds two parts at most.
    """

    def __init__(self, store: S3Store, name: str) -> None:
        self.store = store
        self.name = name
        self.key = store.key(name)
        self.size = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sent = 0  # parts handed to the uploading thread
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: Future[dict[str, Any]] | None = None
        # The backup aborts its upload when this is raised.
        self._upload_failed = (f"Uploading {name} to", BackupError, NOTHING_KEPT)

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._part_size():
            part = self._part_size()
            with memoryview(self._buffer) as view:  # one copy of the part, not two
                chunk = bytes(view[:part])
            del self._buffer[:part]
            self._send(chunk)
        return len(data)

    def flush(self) -> None:
        """Parts leave when full; S3 has no smaller unit to flush."""

    def _part_size(self) -> int:
        return PART_SIZE * (1 + self._sent // PARTS_PER_STEP)

    def _send(self, chunk: bytes) -> None:
        if self._upload_id is None:
            with self.store._errors(*self._upload_failed):
                started = self.store.client.create_multipart_upload(
                    Bucket=self.store.bucket,
                    Key=self.key,
                    **self.store.object_parameters(self.name),
                )
            self._upload_id = started["UploadId"]
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="dbtools-upload")
        if self._sent >= MAX_PARTS:
            raise BackupError(
                f"{self.name} is larger than an S3 object can be uploaded in parts; "
                f"back up fewer tables at a time (--only) or compress (--compress)."
            )
        self._wait()
        self._sent += 1
        assert self._pool is not None
        self._in_flight = self._pool.submit(self._upload_part, self._sent, chunk)

    def _upload_part(self, number: int, chunk: bytes) -> dict[str, Any]:
        with self.store._errors(*self._upload_failed):
            sent = self.store.client.upload_part(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=chunk,
            )
        return {"ETag": sent["ETag"], "PartNumber": number}

    def _wait(self) -> None:
        """Let the part in flight land (or raise its error here, in the backup's thread)."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            self._parts.append(in_flight.result())

    def commit(self) -> StoredBackup:
        """Publish the object: from now on (and only now) it can be listed and read."""
        client, bucket = self.store.client, self.store.bucket
        try:
            if self._upload_id is None:  # smaller than one part: one PUT, atomic too
                with self.store._errors(*self._upload_failed):
                    client.put_object(
                        Bucket=bucket,
                        Key=self.key,
                        Body=bytes(self._buffer),
                        **self.store.object_parameters(self.name),
                    )
            else:
                if self._buffer:
                    self._send(bytes(self._buffer))
                self._wait()
                with self.store._errors(*self._upload_failed):
                    client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=self.key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )
        finally:
            self._buffer.clear()
            self._stop()
        published = self.store.get(self.name, uploading=True)
        if published is None or published.size != self.size:
            raise BackupError(
                f"{self.store.url(self.name)} is not there as uploaded after the upload completed "
                f"({self.size:,} bytes sent); check the bucket, and back up again."
            )
        return published

    def abort(self) -> None:
        self._buffer.clear()
        with contextlib.suppress(Exception):  # the cause being told is the first one
            self._wait()
        self._stop()
        if self._upload_id is not None:
            with contextlib.suppress(*_client_errors()):
                self.store.client.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=self.key, UploadId=self._upload_id
                )
            self._upload_id = None

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class ObjectReader(io.RawIOBase):
    """A seekable, read-only stream of one S3 object version (by ETag), fetched as read."""

    def __init__(self, backup: StoredBackup) -> None:
        self.backup = backup
        self._position = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.backup.size}
        position = max(0, base[whence] + offset)
        if position != self._position:
            self._drop_body()
            self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self.backup.size or not len(buffer):
            return 0
        store = self.backup.store
        try:
            if self._body is None:
                response = store.client.get_object(
                    Bucket=store.bucket,
                    Key=store.key(self.backup.name),
                    Range=f"bytes={self._position}-",
                    IfMatch=self.backup.etag,
                )
                self._body = response["Body"]
            data = self._body.read(len(buffer))
        except _client_errors() as exc:
            self._drop_body()
            if _status(exc) in (404, 412):
                raise OSError(
                    f"{self.backup} was replaced or deleted while it was being read"
                ) from exc
            raise OSError(store.error(f"Reading {self.backup.name} from", exc)) from exc
        if not data:
            self._drop_body()
            raise OSError(
                f"the connection to {store} closed at byte {self._position:,} of "
                f"{self.backup.size:,}"
            )
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
