"""An endpoint's tape QoS class (`tape:` in an endpoint): what the tape-recall probe needs."""

from __future__ import annotations

import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lakeprobe.config.types import Duration
from lakeprobe.probes.core.paths import storage_path
from lakeprobe.probes.core.tapeqos import TapeFile, TapeQos

_HOUR = 3600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class TapeFileConfig(_Strict):
    path: str = Field(description="absolute path of a file with a copy on tape")
    adler32: str | None = Field(None, description="its known adler32, checked after each recall")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return storage_path(value, "path")

    @field_validator("adler32")
    @classmethod
    def _adler32(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{1,8}", value):
            raise ValueError(f"expected up to 8 hex digits, got {value!r}")
        return None if value is None else value.lower().rjust(8, "0")


class TapeConfig(_Strict):
    protocol: Literal["xrootd", "tape-rest"] = Field(
        description="xrootd: prepare over root://; tape-rest: the WLCG Tape REST API"
    )
    files: list[TapeFileConfig] = Field(
        default_factory=list, max_length=1000, description="reference files, recalled in turn"
    )
    archive_dir: str | None = Field(
        None, description="a tape-class directory the probe may write to (archive check)"
    )
    rest_api: str | None = Field(None, description="Tape REST API URI (null: discovered)")
    discovery_url: str | None = Field(
        None, description="where /.well-known/wlcg-tape-rest-api is (null: the endpoint URL)"
    )
    may_evict: bool = Field(False, description="evict a recalled file so it can be recalled again")
    disk_lifetime: Duration = Field(_HOUR, description="asked for in each Tape REST stage")
    online_warning: Duration = Field(_HOUR, description="recall slower than this: WARNING")
    online_critical: Duration = Field(4 * _HOUR, description="recall slower than this: CRITICAL")
    archive_warning: Duration = Field(8 * _HOUR, description="not on tape after this: WARNING")
    archive_critical: Duration = Field(24 * _HOUR, description="not on tape after: CRITICAL")
    abandon_after: Duration = Field(
        48 * _HOUR, description="a request older than this is cancelled and released"
    )
    poll_max_interval: Duration = Field(300.0, description="cap of the polls' backoff")

    @field_validator("archive_dir")
    @classmethod
    def _archive_dir(cls, value: str | None) -> str | None:
        return None if value is None else storage_path(value, "archive_dir")

    @field_validator("rest_api", "discovery_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"expected an https:// URL, got {value!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("credentials, query and fragment are not allowed in the URL")
        _ = parts.port  # raises ValueError for a bad port
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.files and self.archive_dir is None:
            raise ValueError("give reference files to recall, an archive_dir, or both")
        if self.online_warning > self.online_critical:
            raise ValueError("online_warning is longer than online_critical")
        if self.archive_warning > self.archive_critical:
            raise ValueError("archive_warning is longer than archive_critical")
        if self.abandon_after <= self.online_critical:
            raise ValueError("abandon_after must be longer than online_critical")
        if self.protocol == "xrootd" and (self.rest_api or self.discovery_url):
            raise ValueError("rest_api and discovery_url are for protocol tape-rest")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("a reference file is listed twice")
        return self

    def qos(self) -> TapeQos:
        return TapeQos(
            protocol=self.protocol,
            files=tuple(TapeFile(f.path, f.adler32) for f in self.files),
            archive_dir=self.archive_dir,
            rest_api=self.rest_api,
            discovery_url=self.discovery_url,
            may_evict=self.may_evict,
            disk_lifetime=self.disk_lifetime,
            online_warning=self.online_warning,
            online_critical=self.online_critical,
            archive_warning=self.archive_warning,
            archive_critical=self.archive_critical,
            abandon_after=self.abandon_after,
            poll_max_interval=self.poll_max_interval,
        )
