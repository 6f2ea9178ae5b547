"""The config file's schema. Defaults live here and only here."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from lakeprobe.config.network import PerfsonarConfig
from lakeprobe.config.tape import TapeConfig
from lakeprobe.config.types import Duration, HostPattern, ListenAddress, Name, Shard
from lakeprobe.probes.core.checksums import DEFAULT_POLICY, ChecksumPolicy
from lakeprobe.probes.core.paths import storage_path
from lakeprobe.probes.core.target import SCHEMES
from lakeprobe.probes.credentials.oidc import OidcSettings


class Strict(BaseModel):
    # No inf/nan anywhere: the scheduler and the probes compute deadlines from these numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class ServerConfig(Strict):
    listen: ListenAddress = "127.0.0.1:9780"
    probe_host: str | None = Field(None, description="host name in test-file names")
    site: Name | None = Field(None, description="per-site deployment: only what this site owns")
    shard: Shard | None = Field(None, description="'i/N': only the i-th of N hash shards")
    # The HTTP port's guard (lakeprobe/service/httpguard.py) and control endpoints.
    max_connections: int = Field(128, ge=1, le=100_000, description="open HTTP connections")
    header_timeout: Duration = Field(10.0, description="to send a request head (and TLS handshake)")
    keepalive_timeout: Duration = Field(30.0, description="an idle keep-alive connection lives")
    request_timeout: Duration = Field(60.0, description="to handle one request")
    enable_reload: bool = Field(False, description="POST /-/reload (SIGHUP always reloads)")
    state_dir: Path | None = Field(
        None, description="where what probes remember is kept across restarts (none: memory)"
    )
    web_config_file: Path | None = Field(None, description="TLS, basic auth (exporter-toolkit)")

    @field_validator("web_config_file")
    @classmethod
    def _web_config_valid(cls, path: Path | None) -> Path | None:
        # The exporter owns the format; checked here so check-config and reloads report it.
        from lakeprobe.config.webconfig import web_config_problems

        if path is not None and (problems := web_config_problems(path)):
            raise ValueError("; ".join(problems))
        return path


class Defaults(Strict):
    interval: Duration = 60.0
    timeout: Duration = 30.0
    # After a target's first failure, probe it again this soon (null: wait a full interval),
    # so a real outage reaches 2 consecutive failures fast and a single blip pages nobody.
    recheck_after: Duration | None = 15.0
    ca_dir: Path | None = None
    max_concurrent_runs: int = Field(32, ge=1, le=10_000)
    max_concurrent_per_endpoint: int = Field(2, ge=1, le=1000)
    # optional: a server without checksums still works (the data path is checked by bytes
    # and sizes), so it warns and never pages; `required` is for sites whose checksums FTS
    # relies on, `none` for endpoints known to have none (probes/core/checksums.py).
    checksums: ChecksumPolicy = Field(
        DEFAULT_POLICY, description="what a missing server checksum is: required, optional, none"
    )


class OidcAuthConfig(OidcSettings):
    """Client credentials at an issuer, and what to ask it for."""

    scope: str = Field(description="space-separated scopes, e.g. 'storage.read:/ storage.create:/'")
    audience: str | None = None
    refresh_before: Duration = Field(60.0, description="renew a token this long before expiry")
    timeout: Duration = Field(10.0, description="per request to the issuer")

    @field_validator("scope")
    @classmethod
    def _some_scope(cls, scope: str) -> str:
        scope = " ".join(scope.split())
        if not scope:
            raise ValueError("must name at least one scope")
        return scope

    def settings(self) -> OidcSettings:
        """Only the client's part: probes with other scopes share the client (and its cache)."""
        return OidcSettings.model_validate(self.model_dump(include=set(OidcSettings.model_fields)))


class AuthConfig(Strict):
    token_file: Path | None = None
    bearer_discovery: bool = False
    oidc: OidcAuthConfig | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = {
            "token_file": self.token_file is not None,
            "bearer_discovery": self.bearer_discovery,
            "oidc": self.oidc is not None,
        }
        chosen = [name for name, used in sources.items() if used]
        if len(chosen) > 1:
            raise ValueError(
                f"set one of token_file, bearer_discovery or oidc, not {' and '.join(chosen)}"
            )
        return self


XROOTD = ("root", "roots")
ARCHIVE_SCHEMES = ("https", "http")


class EndpointConfig(Strict):
    name: Name
    url: str
    test_dir: str = "/lakeprobe"
    read_only: bool = False
    reference_file: str | None = None
    reference_adler32: str | None = None
    ca_dir: Path | None = None
    audience: str | None = Field(
        None, min_length=1, description="the token audience it accepts (e.g. https://host:port)"
    )
    auth: AuthConfig | None = None
    insecure_token_transport: bool = Field(
        False, description="allow tokens over root:// and http://, where they travel in cleartext"
    )
    checksums: ChecksumPolicy | None = Field(
        None, description="required, optional or none (null: defaults.checksums)"
    )
    redirect_hosts: list[HostPattern] = Field(
        default_factory=list,
        max_length=100,
        description="other hosts HTTP redirects may lead to, e.g. '*.desy.de' (fnmatch)",
    )
    tape: TapeConfig | None = Field(None, description="a tape QoS class (the tape-recall probe)")
    perfsonar: PerfsonarConfig | None = Field(
        None, description="the URL is the site's perfSONAR archive (the perfsonar probe)"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            expected = ", ".join(SCHEMES)
            raise ValueError(f"unsupported scheme {parts.scheme!r} (expected one of {expected})")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("credentials, query and fragment are not allowed in the URL")
        if parts.path not in ("", "/"):
            raise ValueError(f"the URL must not carry a path ({parts.path!r}): use test_dir")
        _ = parts.port  # raises ValueError for a bad port
        return url.rstrip("/")

    @field_validator("test_dir")
    @classmethod
    def _check_test_dir(cls, value: str) -> str:
        return storage_path(value, "test_dir")  # probes/core/paths.py: what clients take literally

    @field_validator("reference_file")
    @classmethod
    def _check_reference(cls, value: str | None) -> str | None:
        return None if value is None else storage_path(value, "reference_file")

    @field_validator("reference_adler32")
    @classmethod
    def _check_adler(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{1,8}", value):
            raise ValueError(f"expected up to 8 hex digits, got {value!r}")
        return None if value is None else value.lower().rjust(8, "0")

    @field_validator("perfsonar")
    @classmethod
    def _archive_over_http(
        cls, value: PerfsonarConfig | None, info: ValidationInfo
    ) -> PerfsonarConfig | None:
        url = info.data.get("url")  # absent when the URL itself was invalid
        scheme = urlsplit(url).scheme if url is not None else None
        if value is not None and scheme is not None and scheme not in ARCHIVE_SCHEMES:
            raise ValueError(f"a perfSONAR archive is read over https:// or http://, not {scheme}")
        return value

    @model_validator(mode="after")
    def _read_only_needs_reference(self) -> Self:
        if self.read_only and self.reference_file is None:
            raise ValueError("read_only endpoints need a reference_file to read")
        return self

    @model_validator(mode="after")
    def _tape_protocol_fits_url(self) -> Self:
        scheme = urlsplit(self.url).scheme
        if self.tape is not None and self.tape.protocol == "xrootd" and scheme not in XROOTD:
            raise ValueError(f"tape.protocol xrootd needs a root:// or roots:// URL, not {scheme}")
        if self.tape is not None and self.tape.protocol == "tape-rest" and scheme in XROOTD:
            raise ValueError("tape.protocol tape-rest needs an https:// or davs:// URL")
        return self


class SiteConfig(Strict):
    name: Name
    # A real site has a handful; the bound keeps each target's redirect_hosts small.
    endpoints: list[EndpointConfig] = Field(min_length=1, max_length=100)

    @cached_property
    def hosts(self) -> frozenset[str]:
        """The host names of the site's endpoints (where their redirects may lead); none that
        would act as a pattern (fnmatch's * ? [)."""
        hosts = (urlsplit(e.url).hostname or "" for e in self.endpoints)
        return frozenset(h for h in hosts if h and not re.search(r"[*?\[]", h))

    @field_validator("endpoints")
    @classmethod
    def _unique(cls, endpoints: list[EndpointConfig]) -> list[EndpointConfig]:
        _reject_duplicates([e.name for e in endpoints], "endpoint name")
        return endpoints


class TargetSelector(Strict):
    """Which endpoints a probe runs against. Omitted fields select everything."""

    sites: list[str] | None = None
    endpoints: list[str] | None = Field(None, description="'SITE/endpoint' or endpoint names")
    protocols: list[str] | None = None
    pairs: list[str] | None = Field(None, description="pair probes: 'SRC->DST' site pairs")


class ProbeConfig(Strict):
    name: Name
    type: str
    interval: Duration | None = None
    timeout: Duration | None = None
    recheck_after: Duration | None = None
    targets: TargetSelector = TargetSelector()
    params: dict[str, Any] = Field(default_factory=dict)
    auth: AuthConfig | None = Field(None, description="replaces the endpoints' auth for this probe")


class LakeprobeConfig(Strict):
    server: ServerConfig = ServerConfig()
    defaults: Defaults = Defaults()
    sites: list[SiteConfig] = Field(min_length=1)
    probes: list[ProbeConfig] = Field(min_length=1)

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, sites: list[SiteConfig]) -> list[SiteConfig]:
        _reject_duplicates([s.name for s in sites], "site name")
        return sites

    @model_validator(mode="after")
    def _own_site_exists(self) -> Self:
        site = self.server.site
        if site is not None and site not in {s.name for s in self.sites}:
            raise ValueError(f"server.site: {site!r} is not one of the configured sites")
        return self

    @field_validator("probes")
    @classmethod
    def _unique_probes(cls, probes: list[ProbeConfig]) -> list[ProbeConfig]:
        _reject_duplicates([p.name for p in probes], "probe name")
        return probes


def _reject_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} {name!r}")
        seen.add(name)
