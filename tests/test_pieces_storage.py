"""The storage interface: the local folder and an S3-compatible store (moto's in-process stand-in)."""

from __future__ import annotations

import io

import pytest

from core.documents.storage import LocalStorage, S3Storage, new_key


def roundtrip(storage):
    key = new_key("auray", "pdf")
    storage.save(key, io.BytesIO(b"%PDF-1.4 test %%EOF"), "application/pdf")
    assert storage.exists(key)
    assert b"".join(storage.chunks(key)) == b"%PDF-1.4 test %%EOF"
    storage.delete(key)
    assert not storage.exists(key)
    with pytest.raises(KeyError):
        storage.chunks(key)
    for bad in ("../etc/passwd", "auray/../../x.pdf", "auray/abc.html", "/abs/0123.pdf"):
        with pytest.raises(KeyError):
            storage.chunks(bad)


def test_local_storage(tmp_path):
    storage = LocalStorage(tmp_path / "pieces")
    roundtrip(storage)
    key = new_key("saint-loubes", "png")
    storage.save(key, io.BytesIO(b"\x89PNG"), "image/png")
    path = storage.path(key)
    assert path.is_file() and oct(path.stat().st_mode)[-3:] == "600"
    assert not list(path.parent.glob("*.part"))


def test_s3_storage_against_a_local_stand_in():
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        client = boto3.client("s3", region_name="eu-west-3", aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket="pieces", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        storage = S3Storage("pieces", prefix="portail", client=client)
        roundtrip(storage)
        key = new_key("auray", "jpg")
        storage.save(key, io.BytesIO(b"\xff\xd8\xff jpeg"), "image/jpeg")
        head = client.head_object(Bucket="pieces", Key=f"portail/{key}")
        assert head["ContentType"] == "image/jpeg" and head["ContentDisposition"] == "attachment"


def test_the_application_uses_s3_by_configuration(monkeypatch):
    pytest.importorskip("boto3")
    from core.documents.storage import build_storage

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    storage = build_storage({"PIECES_STORAGE": "s3", "PIECES_S3_BUCKET": "b", "PIECES_S3_REGION": "eu-west-3",
                             "PIECES_S3_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert isinstance(storage, S3Storage) and storage.client.meta.endpoint_url == "http://127.0.0.1:9000"
    with pytest.raises(RuntimeError):
        build_storage({"PIECES_STORAGE": "s3"})
