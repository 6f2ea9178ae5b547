"""Prometheus text exposition of the results store and the plan's token sources, with the
families each probe type exports (families.py). Each target's lines are rendered once per new
result and cached, so a scrape of tens of thousands of targets is mostly a join."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

from lakeprobe.config.plan import ProbeJob, SeriesKey, TokenKey
from lakeprobe.exporter.families import FAMILIES_BY_PROBE_TYPE, Family, One, Row, Samples
from lakeprobe.exporter.store import ResultsStore, TargetState
from lakeprobe.probes.credentials.tokens import TokenSource

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Targets' texts per chunk of a scrape: about 256 KiB of a 150-site matrix's lines.
PARTS_PER_CHUNK = 2048

S = TypeVar("S")
ResultFamily = Family[TargetState]
TokenFamily = Family[TokenSource]


def escape(value: str) -> str:
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value  # nearly always: three scans are cheaper than three replacements
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{escape(value)}"' for name, value in labels.items())


@dataclass(slots=True)
class _Text:
    """One target's text: made once per target, then updated in place, so a scrape after
    every target ran allocates no new containers (22,350 new lists a scrape pulled a full
    garbage collection of the whole daemon into it, doubling its CPU). A one-sample family's
    block is only its line's end (`} 1.0\n`): the scrape puts the family's `name{` and the
    target's labels before it, so the labels, most of a line, are kept once per target, not
    once per line."""

    row: Row
    labels: bytes  # a target's labels change only with the plan
    blocks: list[bytes]  # per family of `row`; b"": no sample
    version: int = -1  # of the TargetState rendered; -1: none yet


# A row's targets: their labels, and their text per family, in the same order.
_Group = tuple[list[bytes], list[list[bytes]]]
_NO_GROUP: _Group = ([], [])


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
        self._plans = {row: _plan(row) for row in rows}
        self._rows: dict[SeriesKey, Row] = {}
        self._token_subjects: dict[TokenFamily, list[tuple[str, TokenSource]]] = {}
        self._cache: dict[SeriesKey, _Text] = {}
        self._streaming = 0  # scrapes in flight: the text they hold must not change under them

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
        self._cache = {k: v for k, v in self._cache.items() if rows.get(k) is v.row}

    def render(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """The exposition in pieces of at most PARTS_PER_CHUNK targets' lines, so a large one
        is streamed, never joined; the header once per family, a family without samples left
        out."""
        self._streaming += 1
        try:
            for family, parts, per_target in self._bodies():
                if not any(parts):
                    continue
                yield _header(family)
                # Pieces, not the family's megabytes: each is copied on its way to the socket
                # (joined, framed as an HTTP chunk, buffered), which made a scrape's peak.
                step = PARTS_PER_CHUNK * per_target
                for start in range(0, len(parts), step):
                    yield b"".join(parts[start : start + step])
        finally:
            self._streaming -= 1

    def _bodies(self) -> Iterator[tuple[Family[Any], list[bytes], int]]:
        """Per family, its text in parts, and how many parts a target has at most."""
        groups = self._blocks_by_row()  # all targets at once: a reload mid-stream is not seen
        for family in self._results:
            parts: list[bytes] = []
            if isinstance(family.samples, One):
                head = f"{family.name}{{".encode()
                for row, i in self._positions[family]:
                    labels, texts = groups.get(row, _NO_GROUP)
                    for target_labels, blocks in zip(labels, texts, strict=True):
                        if end := blocks[i]:
                            parts += (head, target_labels, end)
                yield family, parts, 3
                continue
            for row, i in self._positions[family]:
                parts += map(itemgetter(i), groups.get(row, _NO_GROUP)[1])
            yield family, parts, 1
        for token_family in self._tokens:
            subjects = self._token_subjects.get(token_family, ())
            yield token_family, [_render(token_family, *s) for s in subjects], 1

    def _blocks_by_row(self) -> dict[Row, _Group]:
        """Each target's labels, and its text per family of its row, in store order, grouped
        by row. Two lists, not a pair per target: 22,350 new tuples kept through a scrape
        would pull a full garbage collection into it."""
        groups: dict[Row, _Group] = defaultdict(lambda: ([], []))
        cache, rows, plans = self._cache, self._rows, self._plans
        for key, state in self._store.view():
            text = cache.get(key)
            if text is None:
                row = rows.get(key)
                if row is None:
                    continue
                text = cache[key] = _Text(row, _labels(key.labels()).encode(), [])
            if text.version != state.version:
                blocks = _render_target(plans[text.row], text.labels, state)
                if self._streaming > 1:  # another scrape still streams the old list
                    text.blocks = blocks
                else:
                    text.blocks[:] = blocks
                text.version = state.version
            labels, texts = groups[text.row]
            labels.append(text.labels)
            texts.append(text.blocks)
        return groups


def _check_names(families: tuple[Family[Any], ...]) -> None:
    """Two families of one name would give /metrics two headers for it."""
    names = [family.name for family in families]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"metric families share a name: {', '.join(twice)}")


def _header(family: Family[Any]) -> bytes:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.kind}\n".encode()


# Per result family: the family, and the value of a one-sample family (else None).
_Plan = tuple[tuple[ResultFamily, Callable[[TargetState], float | None] | None], ...]


def _plan(row: Row) -> _Plan:
    return tuple((f, f.samples.value if isinstance(f.samples, One) else None) for f in row.results)


def _render_target(plan: _Plan, labels: bytes, state: TargetState) -> list[bytes]:
    """A target's text per family of its row: a one-sample family's line end (the hot path,
    inlined), any other family's lines whole."""
    blocks = []
    text_labels = None
    for family, one in plan:
        if one is None:
            if text_labels is None:
                text_labels = labels.decode()
            blocks.append(_render(family, text_labels, state))
            continue
        value = one(state)
        if value is None:
            blocks.append(b"")
            continue
        text = repr(float(value))
        blocks.append(f"}} {_SPECIAL.get(text, text)}\n".encode())
    return blocks


def _render(family: Family[S], labels: str, subject: S) -> bytes:
    samples = family.samples(subject)
    if not samples:
        return b""
    if len(samples) == 1 and samples[0][0] is None:  # most families: one unlabelled sample
        text = repr(float(samples[0][1]))
        return f"{family.name}{{{labels}}} {_SPECIAL.get(text, text)}\n".encode()
    if family.kind == "histogram":
        return _render_histogram(family.name, labels, samples)
    head = f"{family.name}{{{labels}"
    lines = []
    for extra, value in samples:
        text = repr(float(value))  # inlined: this runs once per sample on the scrape path
        text = _SPECIAL.get(text, text)
        if extra is None:
            lines.append(f"{head}}} {text}\n")
        else:
            lines.append(f'{head},{family.extra_label}="{escape(extra)}"}} {text}\n')
    return "".join(lines).encode()


def _render_histogram(name: str, labels: str, samples: Samples) -> bytes:
    """`name_bucket{...,le="..."}` per labelled sample (cumulative, "+Inf" last), then
    `name_sum` (the unlabelled sample) and `name_count` (the "+Inf" bucket)."""
    lines, count = [], 0.0
    for le, value in samples:
        text = repr(float(value))
        text = _SPECIAL.get(text, text)
        if le is None:
            lines.append(f"{name}_sum{{{labels}}} {text}\n")
        else:
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {text}\n')
            count = value
    lines.append(f"{name}_count{{{labels}}} {_SPECIAL.get(repr(count), repr(count))}\n")
    return "".join(lines).encode()
