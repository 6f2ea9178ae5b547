"""An endpoint that is a site's perfSONAR archive (`perfsonar:` in an endpoint): the site's
measurement nodes and how to read the archive, what the perfsonar probe needs."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lakeprobe.probes.core.archivetarget import PerfsonarArchive

# A DNS name as archives record it in meta.source/destination.hostname: labels of letters,
# digits and '-', not starting or ending with '-'; a trailing dot is not part of the name.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
MAX_HOSTS = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class BasicAuthConfig(_Strict):
    """Basic credentials for an archive closed to anonymous readers; the password is read
    from its file when a request needs it, never kept in the config."""

    username: str = Field(min_length=1, max_length=256, description="the archive user")
    password_file: Path = Field(description="a file holding the password")

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if ":" in value or not value.isprintable():
            raise ValueError("a Basic user name has no ':' and no control characters")
        return value


def _host(value: str) -> str:
    """A node's name: a DNS name (lowercased: archives compare them so) or an IP address."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) > 253 or not _DNS_NAME.match(value):
        raise ValueError(f"{value[:80]!r} is not a DNS name or IP address")
    return value.lower()


class PerfsonarConfig(_Strict):
    bandwidth_hosts: list[str] = Field(
        default_factory=list,
        max_length=MAX_HOSTS,
        description="the site's throughput nodes, as the archive names them",
    )
    latency_hosts: list[str] = Field(
        default_factory=list,
        max_length=MAX_HOSTS,
        description="the site's latency (owamp/twamp) nodes, as the archive names them",
    )
    api: Literal["auto", "opensearch", "esmond"] = Field(
        "auto", description="auto: OpenSearch (perfSONAR 5), then esmond (perfSONAR 4)"
    )
    basic_auth: BasicAuthConfig | None = Field(
        None, description="credentials, for an archive not open to anonymous readers"
    )

    @field_validator("bandwidth_hosts", "latency_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        checked = [_host(host) for host in hosts]
        if len(set(checked)) != len(checked):
            raise ValueError("a host is listed twice")
        return checked

    @model_validator(mode="after")
    def _some_host(self) -> Self:
        if not self.bandwidth_hosts and not self.latency_hosts:
            raise ValueError("give the site's nodes: bandwidth_hosts, latency_hosts or both")
        return self

    def archive(self) -> PerfsonarArchive:
        auth = self.basic_auth
        return PerfsonarArchive(
            bandwidth_hosts=tuple(self.bandwidth_hosts),
            latency_hosts=tuple(self.latency_hosts),
            api=self.api,
            username=auth.username if auth is not None else None,
            password_file=auth.password_file if auth is not None else None,
        )
