"""``coordinator.store``: where captures go, the local disk (the default) or an S3 bucket.

One model for both types rather than a union, so that core's secret files apply to it
(``access_key_file``/``secret_key_file`` like every other ``SecretStr``), and so that a key
of the other type is an error naming that key instead of a vague "no union member matched".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from printmesh_core.config import Strict

# S3's bucket naming rules (the strict, virtual-host-safe set every S3 server accepts).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9-]{1,40}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]{1,128}$")
S3_KEYS = ("endpoint", "bucket", "region", "access_key", "secret_key", "spool_dir")


def clean_prefix(value: str) -> str:
    """``"farm/captures/"`` → ``"farm/captures"``: plain segments, no leading or trailing '/'."""
    value = value.strip("/")
    if not value:
        return ""
    for part in value.split("/"):
        if part in (".", "..") or not _SEGMENT.match(part):
            raise ValueError(f"{part!r} is not a plain key segment (letters, digits, '_', '-', '.', '=')")
    return value


class StoreConfig(Strict):
    """``type: local`` writes below ``captures_dir``; ``type: s3`` puts the same keys into a bucket."""

    type: Literal["local", "s3"] = Field(default="local", description="local: captures_dir; s3: a bucket.")
    endpoint: str | None = Field(
        default=None,
        description="s3: the server's URL, http(s)://host[:port] (e.g. https://s3.eu-west-1.amazonaws.com).",
    )
    bucket: str | None = Field(default=None, description="s3: the bucket (it must exist).")
    prefix: str = Field(default="", description="s3: keys start with this folder (e.g. farm1); empty: the bucket root.")
    region: str | None = Field(default=None, description="s3: the bucket's region; unset: us-east-1.")
    access_key: SecretStr | None = Field(default=None, description="s3: access key id (or access_key_file).")
    secret_key: SecretStr | None = Field(default=None, description="s3: secret access key (or secret_key_file).")
    timeout: float = Field(default=5.0, gt=0, le=60, description="s3: seconds to connect, and to wait for an answer.")
    retries: int = Field(
        default=2, ge=0, le=5, description="s3: retries of a request that failed on the network or with a 5xx."
    )
    spool: bool = Field(
        default=True,
        description="s3: while the store cannot be reached, keep captures on this disk (spool_dir) and upload "
        "them, in order, once it answers; false: such a capture fails.",
    )
    spool_dir: Path | None = Field(default=None, description="s3: the spool's folder; unset: <captures_dir>/.spool.")
    spool_max_mb: int = Field(default=2048, ge=1, le=1_000_000, description="s3: the spool's size limit, MB.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("must be http://host[:port] or https://host[:port]")
        if url.path not in ("", "/") or url.query or url.fragment or url.username or url.password:
            raise ValueError("only scheme, host and port (the bucket and prefix are their own keys)")
        try:
            url.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and (not _BUCKET.match(value) or ".." in value):
            raise ValueError("not an S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError("not a region name (lowercase letters, digits, '-')")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return clean_prefix(value)

    @model_validator(mode="after")
    def _complete(self) -> StoreConfig:
        if self.type == "local":
            extra = [k for k in S3_KEYS if getattr(self, k) is not None] + (["prefix"] if self.prefix else [])
            if extra:
                raise ValueError(f"{', '.join(extra)}: only for type s3 (type is local: captures go to captures_dir)")
            return self
        missing = [k for k in ("endpoint", "bucket", "access_key", "secret_key") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"type s3 needs {', '.join(missing)} (access_key/secret_key may be given as *_file)")
        for key in ("access_key", "secret_key"):
            secret = getattr(self, key)
            if secret is not None and not secret.get_secret_value().strip():
                raise ValueError(f"{key} is empty")
        return self
