"""The integrity probes' own series (exporter/families.py): each fixity canary's last
verification, labelled by canary, and the corruption probe's verdict per layer, only for the
layers the last run got to; valid for prometheus_client's parser, on their probe's targets
only."""

from __future__ import annotations

import yaml
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config import parse_config
from lakeprobe.config.plan import ProbeJob, TargetKey, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.families import CORRUPTION_FAMILIES, FAMILIES_BY_PROBE_TYPE, OWN_ROWS
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status

M = Measurement
FIXITY = TargetKey("fixity", "S", "e", "davs")
CORRUPTION = TargetKey("corruption", "S", "e", "davs")
CONFIG = {
    "sites": [{"name": "S", "endpoints": [{"name": "e", "url": "davs://127.0.0.1:8443"}]}],
    "probes": [{"name": "fixity", "type": "fixity"}, {"name": "corruption", "type": "corruption"}],
}
VERIFIED = "lakeprobe_fixity_canary_verification_timestamp_seconds"
VERDICT = "lakeprobe_corruption_verdict"
Found = dict[tuple[str, str, str | None], float]


def plan() -> list[ProbeJob]:
    jobs = build_plan(parse_config(yaml.safe_dump(CONFIG)))
    assert {job.key for job in jobs} == {FIXITY, CORRUPTION}
    return jobs


def result(
    measurements: dict[Measurement, float] | None = None,
    labelled: dict[Measurement, tuple[tuple[str, float], ...]] | None = None,
) -> ProbeResult:
    return ProbeResult(
        Status.WARNING, Reason.CORRUPTION_UNDETECTED, (), 0.5, 1000.0,
        measurements or {}, labelled=labelled or {},
    )  # fmt: skip


def scrape(*records: tuple[TargetKey, ProbeResult]) -> Found:
    """(family, probe, extra label) -> value, parsed by prometheus_client's own parser (which
    fails on an invalid exposition)."""
    store = ResultsStore()
    store.set_targets([FIXITY, CORRUPTION])
    for key, recorded in records:
        store.record(key, recorded)
    exposition = Exposition(store, FAMILIES_BY_PROBE_TYPE)
    exposition.set_plan(plan())
    return {
        (s.name, s.labels["probe"], s.labels.get("canary") or s.labels.get("layer")): s.value
        for family in text_string_to_metric_families(exposition.render().decode())
        for s in family.samples
        if s.name in (VERIFIED, VERDICT)
    }


def test_each_canary_has_its_verification_time() -> None:
    """One series per canary, labelled "<index>-<size>", valued by the last result's time;
    a later result replaces them all (a canary no longer configured disappears)."""
    times = (("0-0", 1500.0), ("1-1024", 1200.5), ("2-1048576", 900.0))
    found = scrape((FIXITY, result(labelled={M.FIXITY_CANARY_VERIFIED: times})))
    assert found == {(VERIFIED, "fixity", label): value for label, value in times}
    later: dict[Measurement, tuple[tuple[str, float], ...]] = {
        M.FIXITY_CANARY_VERIFIED: (("0-0", 1600.0), ("1-1024", 1601.0))
    }
    found = scrape(
        (FIXITY, result(labelled={M.FIXITY_CANARY_VERIFIED: times})),
        (FIXITY, result(labelled=later)),
    )
    assert found == {(VERIFIED, "fixity", "0-0"): 1600.0, (VERIFIED, "fixity", "1-1024"): 1601.0}


def test_verdict_per_layer_the_run_got_to() -> None:
    """Each layer's verdict (0 detected .. 3 error) under its layer name; a run that got to
    only some layers exports only those."""
    every = {
        M.INJECTION_CONTENT_MD5: 1.0,
        M.INJECTION_DIGEST: 1.0,
        M.INJECTION_CONTENT_DIGEST: 2.0,
        M.INJECTION_XRDCP_CKSUM: 0.0,
        M.INJECTION_TPC_CKSUM: 3.0,
        M.INJECTION_COPY_DIGEST: 0.0,
    }
    found = scrape((CORRUPTION, result(every)))
    assert found == {
        (VERDICT, "corruption", "content-md5"): 1.0,
        (VERDICT, "corruption", "digest"): 1.0,
        (VERDICT, "corruption", "content-digest"): 2.0,
        (VERDICT, "corruption", "xrdcp-cksum"): 0.0,
        (VERDICT, "corruption", "tpc-cksum"): 3.0,
        (VERDICT, "corruption", "copy-digest"): 0.0,
    }
    partial = {M.INJECTION_CONTENT_MD5: 0.0, M.INJECTION_DIGEST: 3.0}
    found = scrape((CORRUPTION, result(every)), (CORRUPTION, result(partial)))
    assert found == {
        (VERDICT, "corruption", "content-md5"): 0.0,
        (VERDICT, "corruption", "digest"): 3.0,
    }


def test_series_stay_on_their_probe_types() -> None:
    """Before any result nothing is exported; a fixity result with injection numbers (or a
    corruption result with canary times) exports none of the other probe's series."""
    assert scrape() == {}
    odd = result({M.INJECTION_DIGEST: 1.0}, {M.FIXITY_CANARY_VERIFIED: (("0-0", 5.0),)})
    found = scrape((FIXITY, odd), (CORRUPTION, odd))
    assert found == {(VERIFIED, "fixity", "0-0"): 5.0, (VERDICT, "corruption", "digest"): 1.0}
    assert set(CORRUPTION_FAMILIES) <= set(OWN_ROWS["corruption"].results)


def test_every_injection_measurement_has_a_layer() -> None:
    """A new injection layer's measurement cannot be left without its verdict series."""
    injection = {m for m in Measurement if m.name.startswith("INJECTION_")}
    store = ResultsStore()
    store.set_targets([CORRUPTION])
    store.record(CORRUPTION, result(dict.fromkeys(injection, 0.0)))
    exposition = Exposition(store, FAMILIES_BY_PROBE_TYPE)
    exposition.set_plan(plan())
    text = exposition.render().decode()
    assert text.count(f"{VERDICT}{{") == len(injection)
