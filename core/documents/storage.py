"""Where the pieces' files live: behind one small interface.

* ``LocalStorage`` (default): a folder outside the web root, ``<instance>/pieces/`` unless
  ``PIECES_STORAGE_DIR`` says otherwise.  Enough for one web server.
* ``S3Storage`` (``PIECES_STORAGE=s3``): an S3-compatible store shared by several web servers
  (``PIECES_S3_BUCKET``, ``PIECES_S3_ENDPOINT_URL``, ``PIECES_S3_REGION``, ``PIECES_S3_PREFIX``;
  credentials the usual boto3 way: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``).  Needs the
  optional dependency ``boto3`` (``pip install -e '.[s3]'``).

Keys are made here, never from what a family typed: ``<commune>/<32 hex>.<pdf|jpg|png>``.
Files are served through the application only (which checks who asks), never by a public URL.

A new file whose transaction rolls back is deleted; a file whose piece is deleted goes after the
commit that deleted it (never before: a rollback keeps it).
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

KEY_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*/[0-9a-f]{32}\.(pdf|jpg|png)$")
_NEW = "portail_pieces_new"
_REMOVE = "portail_pieces_remove"


class Storage(Protocol):
    def save(self, key: str, fileobj: BinaryIO, content_type: str) -> None: ...
    def chunks(self, key: str) -> Iterator[bytes]: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


def new_key(tenant_slug: str, extension: str) -> str:
    key = f"{tenant_slug}/{secrets.token_hex(16)}.{extension}"
    if not KEY_RE.match(key):
        raise ValueError(key)
    return key


def _checked(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise KeyError(key)
    return key


class LocalStorage:
    """Files under one folder (created on first use, readable by the application only)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / _checked(key)

    def save(self, key: str, fileobj: BinaryIO, content_type: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(target.name + ".part")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(fileobj, out, 64 * 1024)
        tmp.chmod(0o600)
        tmp.rename(target)

    def chunks(self, key: str) -> Iterator[bytes]:
        path = self.path(key)
        if not path.is_file():
            raise KeyError(key)

        def generate():
            with open(path, "rb") as fh:
                while True:
                    chunk = fh.read(64 * 1024)
                    if not chunk:
                        return
                    yield chunk

        return generate()

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except KeyError:
            return False

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class S3Storage:
    """An S3-compatible bucket (AWS S3, MinIO, Garage, Scaleway, OVH…) through boto3."""

    def __init__(self, bucket: str, *, prefix: str = "", client=None, endpoint_url: str | None = None,
                 region: str | None = None):
        if client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - depends on the optional dependency
                raise RuntimeError("PIECES_STORAGE=s3 demande le paquet boto3 (pip install -e '.[s3]')") from exc
            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _name(self, key: str) -> str:
        return self.prefix + _checked(key)

    def save(self, key: str, fileobj: BinaryIO, content_type: str) -> None:
        self.client.upload_fileobj(fileobj, self.bucket, self._name(key),
                                   ExtraArgs={"ContentType": content_type, "ContentDisposition": "attachment"})

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc
        return body.iter_chunks(64 * 1024)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except Exception:  # noqa: BLE001 - botocore's ClientError (404) or a bad key
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))


def build_storage(config) -> Storage:
    kind = (config.get("PIECES_STORAGE") or "local").lower()
    if kind == "s3":
        bucket = config.get("PIECES_S3_BUCKET")
        if not bucket:
            raise RuntimeError("PIECES_STORAGE=s3 demande PIECES_S3_BUCKET")
        return S3Storage(bucket, prefix=config.get("PIECES_S3_PREFIX") or "",
                         endpoint_url=config.get("PIECES_S3_ENDPOINT_URL"), region=config.get("PIECES_S3_REGION"))
    if kind != "local":
        raise RuntimeError(f"PIECES_STORAGE inconnu : {kind!r} (local ou s3)")
    root = config.get("PIECES_STORAGE_DIR") or str(Path(current_app.instance_path) / "pieces")
    return LocalStorage(root)


def get_storage() -> Storage:
    """The application's storage (built once per application)."""
    app = current_app._get_current_object()
    storage = app.extensions.get("pieces_storage")
    if storage is None:
        storage = app.extensions["pieces_storage"] = build_storage(app.config)
    return storage


# ====================================================================== with the transaction

def track_new(session: Session, key: str) -> None:
    """A file just written for a row of this transaction: deleted if the transaction rolls back."""
    session.info.setdefault(_NEW, []).append(key)


def remove_after_commit(session: Session, key: str) -> None:
    session.info.setdefault(_REMOVE, []).append(key)


def _delete_quietly(keys) -> None:
    if not keys or not has_app_context():
        return
    storage = get_storage()
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - a file left behind is logged, never an error for the user
            log.exception("pieces: could not delete %s", key)


@event.listens_for(Session, "after_commit")
def _after_commit(session) -> None:
    session.info.pop(_NEW, None)
    _delete_quietly(session.info.pop(_REMOVE, None))


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session, transaction) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    session.info.pop(_REMOVE, None)  # rolled back: the rows are still there, keep their files
    _delete_quietly(session.info.pop(_NEW, None))
