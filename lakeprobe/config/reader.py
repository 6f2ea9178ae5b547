"""Untrusted config bytes -> plain YAML data, within fixed limits. Whatever the input (binary,
Latin-1, a 5000-digit number, nesting 100000 deep, a billion-laughs alias bomb), reading ends
fast with a one-line UnreadableConfig, never another exception."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    ScalarEvent,
)

MIB = 1024 * 1024
MAX_BYTES = 8 * MIB  # a 150-site lake's config is ~40 KB
MAX_DEPTH = 64  # the schema nests 6 deep; PyYAML's composer recurses, libyaml's crashes
MAX_VALUES = 1_000_000  # scalars and collections, each alias counted as what it expands to

# libyaml parses ~10x faster; the pure-Python loader is the fallback where it is missing.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnreadableConfig(Exception):
    """The bytes are not a config document we read: one line, with its position if known."""


def decode(data: bytes) -> str:
    """UTF-8 text of at most MAX_BYTES bytes, without NUL bytes."""
    if len(data) > MAX_BYTES:
        raise UnreadableConfig(f"larger than the {MAX_BYTES // MIB} MiB a config file may have")
    if (nul := data.find(b"\0")) >= 0:
        raise UnreadableConfig(f"a binary file (NUL byte at offset {nul}), not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise UnreadableConfig(
            f"not UTF-8 text: invalid byte 0x{byte:02x} at offset {error.start}"
        ) from None


def read_yaml(text: str) -> Any:
    """The single YAML document in `text`, as plain data."""
    if len(text) > MAX_BYTES:
        raise UnreadableConfig(f"larger than the {MAX_BYTES // MIB} MiB a config file may have")
    try:
        _check_shape(text)  # before composing: the limits keep composing cheap and shallow
        return yaml.load(text, Loader=_Loader)  # a SafeLoader (CSafeLoader) subclass
    except yaml.MarkedYAMLError as error:
        raise UnreadableConfig(_at(error.problem_mark, f"invalid YAML: {_line(error)}")) from None
    except yaml.reader.ReaderError as error:
        raise UnreadableConfig(
            f"character {error.position}: invalid YAML: unacceptable character "
            f"#x{error.character:04x} ({error.reason})"
        ) from None
    except yaml.YAMLError as error:
        raise UnreadableConfig(f"invalid YAML: {_line(error)}") from None


@dataclass(slots=True)
class _Open:
    """A collection whose end event has not come yet."""

    anchor: str | None
    values_before: int  # the document's value count before this collection
    levels: int = 1  # collection levels in it, itself included


def _check_shape(text: str) -> None:
    """Walk the parser's events (libyaml's parser is iterative, unlike its composer) and
    bound the depth and the number of values of the document as loading would expand it.
    An alias counts as the size of its anchor, so a billion-laughs file of 1 KB is
    rejected after a few hundred events."""
    stack: list[_Open] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels) of its node
    values = 0
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, DocumentStartEvent):
            anchors.clear()
        elif isinstance(event, CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _limit(event, f"nested deeper than {MAX_DEPTH} levels")
            stack.append(_Open(event.anchor, values))
            values += 1
        elif isinstance(event, CollectionEndEvent):
            node = stack.pop()
            if node.anchor is not None:
                anchors[node.anchor] = (values - node.values_before, node.levels)
            if stack:
                stack[-1].levels = max(stack[-1].levels, node.levels + 1)
        elif isinstance(event, ScalarEvent):
            if "\0" in event.value:  # "\0" in a quoted string: no path or name has one
                raise _limit(event, "a NUL character in a value")
            values += 1
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, AliasEvent):
            values += _alias(event, stack, anchors)
        if values > MAX_VALUES:
            raise _limit(event, f"the document has more than {MAX_VALUES} values{_how(event)}")


def _alias(event: AliasEvent, stack: list[_Open], anchors: dict[str, tuple[int, int]]) -> int:
    """The number of values alias `event` expands to; raises if it closes a cycle or nests
    too deep. An undefined alias counts 0 here: the composer reports it."""
    if any(node.anchor == event.anchor for node in stack):
        raise _limit(event, f"alias *{event.anchor} refers to a node that contains it (a cycle)")
    size, levels = anchors.get(event.anchor or "", (0, 0))
    if len(stack) + levels > MAX_DEPTH:
        raise _limit(event, f"alias *{event.anchor} nests deeper than {MAX_DEPTH} levels")
    if stack:
        stack[-1].levels = max(stack[-1].levels, levels + 1)
    return size


def _how(event: object) -> str:
    return f" (alias *{event.anchor} expands past that)" if isinstance(event, AliasEvent) else ""


def _limit(event: Any, problem: str) -> UnreadableConfig:
    return UnreadableConfig(_at(event.start_mark, problem))


def _at(mark: Any, text: str) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: {text}" if mark else text


def _line(error: yaml.YAMLError) -> str:
    """The problem on one line, with where the parser was ('while parsing a block mapping
    at line 3, column 3'), when it says."""
    problem = getattr(error, "problem", None) or str(error)
    context, mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and mark:
        problem = f"{problem} ({context} at line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(problem).split())


class _Loader(_Base):
    """A safe loader whose value conversions fail as YAML errors that carry a position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as error:
            problem = f"cannot read the {node.tag.rpartition(':')[2]} value: {error}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return int(super().construct_yaml_int(node))
        except ValueError:  # Python refuses ints of more digits (CVE-2020-10735)
            digits = sys.get_int_max_str_digits()
            problem = f"an integer of more than {digits} digits"
            raise ConstructorError(None, None, problem, node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
