"""What the scheduler runs and what names its series: plain dataclasses without the config
models, so that `lakeprobe run URL` makes its job without importing pydantic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from lakeprobe.probes.core.context import ProbeParams, ProbeType
from lakeprobe.probes.core.target import PairTarget, Target

if TYPE_CHECKING:
    from lakeprobe.config.plan import SeriesKey
    from lakeprobe.probes.credentials.tokens import TokenSource


@dataclass(frozen=True, slots=True, order=True)
class TargetKey:
    """The identity of an endpoint's series: exactly its bounded metric labels."""

    probe: str
    site: str
    endpoint: str
    protocol: str

    @property
    def job_id(self) -> str:
        return f"{self.probe}|{self.site}|{self.endpoint}"

    @property
    def owner(self) -> str:
        return self.site

    def involves(self, site: str) -> bool:
        return site == self.site

    def describe(self) -> str:
        return f"{self.probe} {self.site}/{self.endpoint}"

    def labels(self) -> dict[str, str]:
        return {
            "probe": self.probe,
            "site": self.site,
            "endpoint": self.endpoint,
            "protocol": self.protocol,
        }


@dataclass(frozen=True, slots=True, order=True)
class TokenKey:
    """The identity of a configured token source's series: its endpoint, and the probe whose
    own `auth` replaces the endpoint's ("" for the endpoint's auth)."""

    site: str
    endpoint: str
    probe: str

    def labels(self) -> dict[str, str]:
        return {"site": self.site, "endpoint": self.endpoint, "probe": self.probe}


TokenUse: TypeAlias = "tuple[TokenKey, TokenSource]"  # a string: tokens.py loads only with a token


# A job's target kind: its probe type and its target agree (ProbeType is invariant in it), so
# mypy rejects a job that hands a pair probe a single endpoint, or the reverse.
T = TypeVar("T", Target, PairTarget)


@dataclass(frozen=True, slots=True)
class ProbeJob(Generic[T]):
    """One scheduled (or on-demand) run: a probe type, its target and parameters."""

    key: SeriesKey
    probe_type: ProbeType[Any, T]
    target: T
    params: ProbeParams
    interval: float
    timeout: float
    recheck_after: float | None = None
    tokens: tuple[TokenUse, ...] = ()  # the token sources the job's targets use
