"""Pair plans and sharding: every ordered site pair is owned by exactly one deployment."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml

from lakeprobe.config import parse_config
from lakeprobe.config.pairs import PairKey
from lakeprobe.config.plan import Scope, TargetKey, build_plan
from lakeprobe.probes.core.target import PairTarget


def lake(sites: int, modes: list[str], extra_probes: list[dict[str, Any]] | None = None) -> str:
    config = {
        "sites": [
            {
                "name": f"S{n}",
                "endpoints": [
                    {"name": "https", "url": f"davs://s{n}.example.org"},
                    {"name": "root", "url": f"root://s{n}.example.org"},
                ],
            }
            for n in range(sites)
        ],
        "probes": [
            {"name": "tpc", "type": "http-tpc", "params": {"modes": modes}},
            *(extra_probes or []),
        ],
    }
    return yaml.safe_dump(config)


def test_all_ordered_pairs_and_modes() -> None:
    """3 sites x 2 modes: 6 ordered pairs per mode, source and destination endpoints right."""
    jobs = build_plan(parse_config(lake(3, ["pull", "push"])))
    keys = [job.key for job in jobs]
    assert len(keys) == 12
    assert all(isinstance(k, PairKey) for k in keys)
    assert {(k.src_site, k.dst_site) for k in keys if isinstance(k, PairKey)} == {
        (a, b) for a in ("S0", "S1", "S2") for b in ("S0", "S1", "S2") if a != b
    }
    pair = next(j.target for j in jobs if j.key.job_id == "tpc|S0->S2|push")
    assert isinstance(pair, PairTarget)
    assert (pair.source.url, pair.destination.url, pair.active.url) == (
        "davs://s0.example.org",
        "davs://s2.example.org",
        "davs://s0.example.org",
    )


def test_configured_pair_subset() -> None:
    text = lake(3, ["pull"]).replace(
        "type: http-tpc", "type: http-tpc\n  targets: {pairs: ['S0->S1', 'S2->S0']}"
    )
    assert sorted(j.key.job_id for j in build_plan(parse_config(text))) == [
        "tpc|S0->S1|pull",
        "tpc|S2->S0|pull",
    ]


@pytest.mark.parametrize("sites", [2, 5, 12])
def test_site_shards_cover_every_job_exactly_once(sites: int) -> None:
    """N per-site deployments together run the central plan, each job once: pull pairs at
    the destination, push pairs at the source, endpoint probes at their own site."""
    config = parse_config(lake(sites, ["pull", "push"], [{"name": "dav", "type": "webdav"}]))
    central = Counter(job.key for job in build_plan(config))
    shards = Counter(
        job.key for n in range(sites) for job in build_plan(config, Scope(site=f"S{n}"))
    )
    assert shards == central
    assert max(shards.values()) == 1
    for job in build_plan(config, Scope(site="S1")):
        key = job.key
        if isinstance(key, PairKey):
            assert (key.dst_site if key.mode == "pull" else key.src_site) == "S1"
        else:
            assert isinstance(key, TargetKey)
            assert key.site == "S1"


@pytest.mark.parametrize("count", [1, 3, 7])
def test_hash_shards_cover_every_job_exactly_once(count: int) -> None:
    config = parse_config(lake(8, ["pull", "push"]))
    central = Counter(job.key for job in build_plan(config))
    shards = Counter(
        job.key for i in range(count) for job in build_plan(config, Scope(shard=f"{i}/{count}"))
    )
    assert shards == central
    assert max(shards.values()) == 1


def test_server_site_in_config_limits_the_plan() -> None:
    text = "server: {site: S0}\n" + lake(4, ["pull"])
    keys = [job.key for job in build_plan(parse_config(text))]
    assert len(keys) == 3
    assert all(isinstance(k, PairKey) and k.dst_site == "S0" for k in keys)
