"""The header fields of one HTTP answer: case-insensitive names, repeated fields kept in order.

A small read-only Mapping instead of multidict: `lakeprobe run webdav` loads it in no time,
where multidict (with the yarl it came with) cost ~7 ms of a ~105 ms process
(benchmarks/RESULTS.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Headers(Mapping[str, str]):
    """`get`/`[]` give a field's first value, `getall` every value; iteration gives each
    distinct name once, as the server first wrote it."""

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        self._fields: tuple[tuple[str, str], ...] = tuple(pairs)
        self._index: dict[str, list[str]] = {}
        for name, value in self._fields:
            self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._fields:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._index)

    def getall(self, name: str, default: list[str] | None = None) -> list[str]:
        """Every value of the field `name`, in order; `default` (or KeyError) when absent."""
        values = self._index.get(name.lower())
        if values is not None:
            return list(values)
        if default is None:
            raise KeyError(name)
        return default

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"
