"""The blob store on an S3-compatible object store (AWS S3, MinIO, Ceph...), for the distributed
mode: every service instance sees the same objects without a shared folder.

    BLOB_URL=s3://headshots/prod  S3_ENDPOINT_URL=http://minio:9000  S3_ACCESS_KEY_ID=...

Keys are generated exactly as for the local folder (``libs.storage.new_key``) and stored under the
URL's prefix; a key of any other shape is refused before a request is made. Large bodies go up in
multipart chunks (boto3's transfer manager); a missing object is :class:`BlobNotFound`.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

from libs.settings import Settings
from libs.storage import BlobError, BlobNotFound, is_valid_key, new_key

MULTIPART_THRESHOLD = 8 * 1024 * 1024


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        if len(bucket) < 3:
            raise BlobError(f"S3 bucket name {bucket!r} is too short (3 characters at least)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        import boto3
        from botocore.config import Config

        parts = urlsplit(settings.BLOB_URL)
        if parts.scheme != "s3" or not parts.netloc:
            raise BlobError(f"BLOB_URL must look like s3://bucket/prefix, not {settings.BLOB_URL!r}")
        client = boto3.client(
            "s3",
            endpoint_url=settings.S3_ENDPOINT_URL or None,
            region_name=settings.S3_REGION,
            aws_access_key_id=settings.S3_ACCESS_KEY_ID or None,
            aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY or None,
            config=Config(
                # Signature V4: presigned URLs carry their lifetime (X-Amz-Expires), and every
                # region and S3-compatible server accepts them (V2 is refused by newer regions).
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )
        return cls(client, parts.netloc, parts.path)

    def _object(self, key: str) -> str:
        if not is_valid_key(key):
            raise BlobError(f"not a blob key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, data: bytes, *, kind: str, ext: str) -> str:
        return self.put_at(new_key(kind, ext), data)

    def put_at(self, key: str, data: bytes) -> str:
        """Write under a generated or derived key; an object is replaced whole (S3 has no partial
        writes), so a job that runs twice rewrites the same object."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._object(key), Config=config)
        return key

    def get(self, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFound(key) from None
        body: bytes = answer["Body"].read()
        return body

    def delete(self, key: str) -> bool:
        existed = self.exists(key)
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        return existed

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BlobNotFound(key) from None
            raise
        return int(head["ContentLength"])

    def url_for_download(self, key: str, seconds: int, *, disposition: str | None = None) -> str:
        """A GET URL for this one object that expires after ``seconds`` (the caller has checked
        that the person asking owns it); ``disposition`` becomes the answer's Content-Disposition
        (e.g. ``attachment; filename="headshot.jpg"``). Signed here, no request is made."""
        params = {"Bucket": self.bucket, "Key": self._object(key)}
        if disposition:
            params["ResponseContentDisposition"] = disposition
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
        return url

    @property
    def public_url(self) -> str:
        """Where browsers fetch this store's URLs (its origin goes into the pages' img-src)."""
        return self.url_for_download(new_key("probe", "jpg"), 1)
