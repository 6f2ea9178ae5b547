"""Prometheus text exposition of the results store and the plan's token sources, with the
families each probe type exports (families.py). Each target's lines are rendered once per new
result and cached, so a scrape of tens of thousands of targets is mostly a join."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from lakeprobe.config.plan import ProbeJob, SeriesKey, TokenKey
from lakeprobe.exporter.families import FAMILIES_BY_PROBE_TYPE, Family, Row
from lakeprobe.exporter.store import ResultsStore, TargetState
from lakeprobe.probes.credentials.tokens import TokenSource

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

S = TypeVar("S")
ResultFamily = Family[TargetState]
TokenFamily = Family[TokenSource]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{escape(value)}"' for name, value in labels.items())


class Exposition:
    """Renders what `set_plan` made known, with the rows of `table`; keeps each target's text
    until its state changes. A target the plan does not list is not exported."""

    def __init__(self, store: ResultsStore, table: Mapping[str, Row] = FAMILIES_BY_PROBE_TYPE):
        self._store = store
        self._table = table
        rows = list(table.values())
        # Output order: each family once, where it first appears in the table.
        self._results = tuple(dict.fromkeys(f for row in rows for f in row.results))
        self._tokens = tuple(dict.fromkeys(f for row in rows for f in row.tokens))
        _check_names((*self._results, *self._tokens))
        # Where each result family sits in each row that lists it.
        self._positions: dict[ResultFamily, list[tuple[Row, int]]] = {f: [] for f in self._results}
        for row in {id(row): row for row in rows}.values():
            for index, family in enumerate(row.results):
                self._positions[family].append((row, index))
        self._rows: dict[SeriesKey, Row] = {}
        self._token_subjects: dict[TokenFamily, list[tuple[str, TokenSource]]] = {}
        self._cache: dict[SeriesKey, tuple[int, Row, list[bytes]]] = {}

    def set_plan(self, jobs: Iterable[ProbeJob[Any]]) -> None:
        """Each target's row, by its probe type; each token family's sources, once each, from
        the targets whose row lists it. Drops the text of targets gone or changed in type."""
        sources: dict[TokenFamily, dict[TokenKey, TokenSource]] = defaultdict(dict)
        rows: dict[SeriesKey, Row] = {}
        for job in jobs:
            rows[job.key] = row = self._table[job.probe_type.name]
            for family in row.tokens:
                sources[family].update(job.tokens)
        self._rows = rows
        self._token_subjects = {
            family: [(_labels(key.labels()), source) for key, source in sorted(used.items())]
            for family, used in sources.items()
        }
        self._cache = {k: v for k, v in self._cache.items() if rows.get(k) is v[1]}

    def render(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """One chunk per metric family, so a large exposition is streamed, never joined; the
        header once per family, and a family without samples left out."""
        for family, body in self._bodies():
            if body:
                yield _header(family) + body

    def _bodies(self) -> Iterator[tuple[Family[Any], bytes]]:
        groups = self._blocks_by_row()  # all targets at once: a reload mid-stream is not seen
        for family in self._results:
            places = self._positions[family]
            body = b"".join(block[i] for row, i in places for block in groups.get(row, ()))
            yield family, body
        for token_family in self._tokens:
            subjects = self._token_subjects.get(token_family, ())
            yield token_family, b"".join(_render(token_family, *s) for s in subjects)

    def _blocks_by_row(self) -> dict[Row, list[list[bytes]]]:
        """Each target's text per family of its row, in store order, grouped by row."""
        groups: dict[Row, list[list[bytes]]] = defaultdict(list)
        cache, rows = self._cache, self._rows
        for key, state in self._store.items():
            cached = cache.get(key)
            if cached is not None and cached[0] == state.version:
                groups[cached[1]].append(cached[2])
                continue
            row = rows.get(key)
            if row is None:
                continue
            labels = _labels(key.labels())
            blocks = [_render(family, labels, state) for family in row.results]
            cache[key] = (state.version, row, blocks)
            groups[row].append(blocks)
        return groups


def _check_names(families: tuple[Family[Any], ...]) -> None:
    """Two families of one name would give /metrics two headers for it."""
    names = [family.name for family in families]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"metric families share a name: {', '.join(twice)}")


def _header(family: Family[Any]) -> bytes:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.kind}\n".encode()


def _render(family: Family[S], labels: str, subject: S) -> bytes:
    head = f"{family.name}{{{labels}"
    samples = family.samples(subject)
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
