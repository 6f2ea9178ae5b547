"""Prometheus text exposition of the results store. Each target's lines are rendered once
per new result and cached, so a scrape of tens of thousands of targets is mostly a join."""

from __future__ import annotations

from collections.abc import Iterator

from lakeprobe.config.pairs import PairKey
from lakeprobe.config.plan import SeriesKey, TargetKey
from lakeprobe.exporter.families import ENDPOINT_FAMILIES, PAIR_FAMILIES, Family
from lakeprobe.exporter.store import ResultsStore, TargetState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _labels(key: SeriesKey) -> str:
    return ",".join(f'{name}="{escape(value)}"' for name, value in key.labels().items())


class Exposition:
    """Renders the store; keeps per-target text until that target's state changes."""

    def __init__(self, store: ResultsStore) -> None:
        self._store = store
        self._cache: dict[SeriesKey, tuple[int, list[bytes]]] = {}

    def render(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """One chunk per metric family, so a large exposition is streamed, never joined."""
        items = self._store.items()
        if len(self._cache) > len(items):  # targets were removed by a reload
            alive = {key for key, _ in items}
            self._cache = {k: v for k, v in self._cache.items() if k in alive}
        for kind, families in ((TargetKey, ENDPOINT_FAMILIES), (PairKey, PAIR_FAMILIES)):
            blocks = [
                self._blocks(key, state, families) for key, state in items if isinstance(key, kind)
            ]
            for index, family in enumerate(families):
                body = b"".join(block[index] for block in blocks)
                if body:
                    yield _header(family) + body

    def _blocks(self, key: SeriesKey, state: TargetState, families: list[Family]) -> list[bytes]:
        cached = self._cache.get(key)
        if cached is not None and cached[0] == state.version:
            return cached[1]
        labels = _labels(key)
        blocks = [_render(family, labels, state) for family in families]
        self._cache[key] = (state.version, blocks)
        return blocks


def _header(family: Family) -> bytes:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.kind}\n".encode()


def _render(family: Family, labels: str, state: TargetState) -> bytes:
    head = f"{family.name}{{{labels}"
    samples = family.samples(state)
    if len(samples) == 1 and samples[0][0] is None:  # most families: one unlabelled sample
        text = repr(float(samples[0][1]))
        return f"{head}}} {_SPECIAL.get(text, text)}\n".encode()
    lines = []
    for extra, value in samples:
        text = repr(float(value))  # inlined: this runs once per sample on the scrape path
        text = _SPECIAL.get(text, text)
        if extra is None:
            lines.append(f"{head}}} {text}\n")
        else:
            lines.append(f'{head},{family.extra_label}="{escape(extra)}"}} {text}\n')
    return "".join(lines).encode()
