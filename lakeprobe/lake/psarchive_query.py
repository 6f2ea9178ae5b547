"""The subset of the OpenSearch query DSL the perfSONAR archive double evaluates, for real.

Evaluated on the double's documents so a client's wrong query gets wrong answers: `bool`
(filter, must, should, must_not), `term`, `terms`, `range` (date math `now-6h`, ISO times,
epoch millis), `exists`, `match_all`; `sort`, `size`, `from` and `_source` filtering.
Mapping as perfSONAR's index template has it: strings are `text` fields with a `.keyword`
subfield, so a `term` on the text field matches only one analysed token (a whole host name
matches only on `.keyword`); `pscheduler.start_time`/`end_time` are dates; numbers are numbers.
Anything else is a QueryError, answered 400 as OpenSearch does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

DATE_FIELDS = frozenset({"pscheduler.start_time", "pscheduler.end_time"})
_DATE_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])")
_UNIT_SECONDS = {
    "y": 365 * 86400, "M": 30 * 86400, "w": 7 * 86400, "d": 86400,
    "h": 3600, "H": 3600, "m": 60, "s": 1,
}  # fmt: skip
_TOKEN = re.compile(r"[^a-z0-9_.]+")  # roughly the standard analyser: "ps-bw.x" -> ps, bw.x
Document = dict[str, Any]


class QueryError(ValueError):
    """A query the double does not understand (OpenSearch: 400 parsing_exception)."""


def lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def matches(query: object, doc: Document, now: float) -> bool:
    """Whether `doc` matches `query` at unix time `now`."""
    if not isinstance(query, Mapping) or len(query) != 1:
        raise QueryError(f"a query is an object with one key, got {query!r:.80}")
    ((kind, body),) = query.items()
    handler = _QUERIES.get(kind)
    if handler is None:
        raise QueryError(f"unknown query [{kind}]")
    return handler(body, doc, now)


def _bool(body: Any, doc: Document, now: float) -> bool:
    def clauses(key: str) -> list[object]:
        value = body.get(key, [])
        return value if isinstance(value, list) else [value]

    if not isinstance(body, Mapping):
        raise QueryError("[bool] expects an object")
    required = clauses("filter") + clauses("must")
    if not all(matches(clause, doc, now) for clause in required):
        return False
    if any(matches(clause, doc, now) for clause in clauses("must_not")):
        return False
    should = clauses("should")
    wanted = int(body.get("minimum_should_match", 0 if required else 1 if should else 0))
    return sum(matches(clause, doc, now) for clause in should) >= wanted


def _field(body: Any, what: str) -> tuple[str, Any]:
    if not isinstance(body, Mapping) or len(body) != 1:
        raise QueryError(f"[{what}] expects one field")
    ((field, value),) = body.items()
    return field, value


def _term(body: Any, doc: Document, now: float) -> bool:
    field, value = _field(body, "term")
    if isinstance(value, Mapping):
        value = value.get("value")
    return value in values_of(doc, field) or str(value) in map(str, values_of(doc, field))


def _terms(body: Any, doc: Document, now: float) -> bool:
    field, wanted = _field(body, "terms")
    if not isinstance(wanted, list):
        raise QueryError("[terms] expects a list of values")
    return any(_term({field: value}, doc, now) for value in wanted)


def _exists(body: Any, doc: Document, now: float) -> bool:
    if not isinstance(body, Mapping) or not isinstance(body.get("field"), str):
        raise QueryError("[exists] expects a field")
    return bool(values_of(doc, body["field"]))


def _match_all(body: Any, doc: Document, now: float) -> bool:
    return True


def _range(body: Any, doc: Document, now: float) -> bool:
    field, bounds = _field(body, "range")
    if not isinstance(bounds, Mapping):
        raise QueryError("[range] expects bounds")
    date = field in DATE_FIELDS
    value = lookup(doc, field)
    if value is None:
        return False
    have = parse_time(value) if date else value
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
        "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
    }  # fmt: skip
    for key, bound in bounds.items():
        if key in ("format", "time_zone", "boost"):
            continue
        if key not in tests:
            raise QueryError(f"[range] unknown bound [{key}]")
        limit = date_bound(bound, now) if date else bound
        if not tests[key](have, limit):
            return False
    return True


_QUERIES: dict[str, Callable[[Any, Document, float], bool]] = {
    "bool": _bool,
    "term": _term,
    "terms": _terms,
    "range": _range,
    "exists": _exists,
    "match_all": _match_all,
}


def values_of(doc: Document, field: str) -> list[Any]:
    """What a term query compares with: `x.keyword` is the whole string of text field x, a
    text field itself holds its tokens, other values are themselves."""
    if field.endswith(".keyword"):
        value = lookup(doc, field.removesuffix(".keyword"))
        return [value] if isinstance(value, str) else []
    value = lookup(doc, field)
    if value is None:
        return []
    if isinstance(value, str) and field not in DATE_FIELDS:
        return [token for token in _TOKEN.split(value.lower()) if token]
    return value if isinstance(value, list) else [value]


def parse_time(value: Any) -> float:
    """Unix seconds of a stored date (ISO) or epoch millis."""
    if isinstance(value, int | float):
        return float(value) / 1000.0
    moment = datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def date_bound(bound: Any, now: float) -> float:
    """A range bound in unix seconds: epoch millis, `now[+-N<unit>]...` or an ISO time."""
    if isinstance(bound, int | float) and not isinstance(bound, bool):
        return float(bound) / 1000.0
    if not isinstance(bound, str):
        raise QueryError(f"[range] bound {bound!r:.40} is no date")
    if bound.isdigit():
        return int(bound) / 1000.0
    if not bound.startswith("now"):
        try:
            return parse_time(bound)
        except ValueError:
            raise QueryError(f"[range] failed to parse date {bound!r:.40}") from None
    math, at = bound[3:].split("/", 1)[0], now
    position = 0
    for found in _DATE_MATH.finditer(math):
        if found.start() != position:
            break
        sign = 1 if found.group(1) == "+" else -1
        at += sign * int(found.group(2)) * _UNIT_SECONDS[found.group(3)]
        position = found.end()
    if position != len(math):
        raise QueryError(f"[range] failed to parse date math {bound!r:.40}")
    return at


def sort_hits(hits: list[Document], sort: object) -> list[Document]:
    """`sort`: a field, {field: order} or {field: {"order": ...}}, or a list of those."""
    for spec in reversed(sort if isinstance(sort, list) else [sort] if sort else []):
        field, order = _sort_spec(spec)
        present = [doc for doc in hits if lookup(doc, field) is not None]
        missing = [doc for doc in hits if lookup(doc, field) is None]  # last, as OpenSearch

        def key(doc: Document, field: str = field) -> Any:
            value = lookup(doc, field)
            return parse_time(value) if field in DATE_FIELDS else value

        hits = sorted(present, key=key, reverse=order == "desc") + missing
    return hits


def _sort_spec(spec: object) -> tuple[str, str]:
    if isinstance(spec, str):
        return spec, "asc"
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((field, how),) = spec.items()
        order = how.get("order", "asc") if isinstance(how, Mapping) else how
        if order in ("asc", "desc"):
            return str(field), order
    raise QueryError(f"[sort] cannot sort on {spec!r:.80}")


def source_filter(doc: Document, spec: object) -> Document | None:
    """The `_source` a hit returns: all, none (False), or only the included fields."""
    if spec is None or spec is True:
        return doc
    if spec is False:
        return None
    if isinstance(spec, str):
        spec = [spec]
    includes, excludes = spec, []
    if isinstance(spec, Mapping):
        includes, excludes = spec.get("includes", ["*"]), spec.get("excludes", [])
    if not isinstance(includes, list) or not isinstance(excludes, list):
        raise QueryError("[_source] expects field patterns")
    kept: Document = {}
    for path, value in _leaves(doc, ""):
        if _selected(path, includes) and not _selected(path, excludes):
            _put(kept, path, value)
    return kept


def _selected(path: str, patterns: list[Any]) -> bool:
    return any(
        fnmatch.fnmatchcase(path, str(pattern)) or path.startswith(f"{pattern}.")
        for pattern in patterns
    )


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, node


def _put(doc: Document, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[last] = value
