"""Storage paths that every client sends literally: the one check for test and reference paths.

A path is judged after the normalisation and parsing the clients apply, so what the check
accepts is exactly the path the server acts on: `?` starts a query (XRootD: CGI), `#` a
fragment, `%2e%2e` and `..` are dot-segments a URL parser or server resolves, `\\` is `/` to
some clients, `;` starts path parameters in Java servlet containers (dCache, StoRM), and
Unicode compatibility forms such as U+FF1F (fullwidth question mark) become `?` under NFKC.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

# Characters some client or server reads as something other than a path character.
RESERVED = {
    "?": "clients read it as the start of a query, XRootD as CGI",
    "#": "clients read it as the start of a fragment",
    "%": "servers decode percent-encoding",
    "\\": "some clients read it as '/'",
    ";": "servlet containers read it as the start of path parameters",
}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2})*")
_KINDS = {
    "Cc": "control character",
    "Cf": "invisible format character",
    "Cs": "surrogate",
    "Co": "private-use character",
    "Cn": "unassigned character",
    "Zs": "whitespace",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
_SPECIAL = set(RESERVED) | {".", "/"}
# Printable ASCII that is none of the above: no character check can fail (test file names,
# most configured paths), so a path made only of these skips the per-character checks.
_PLAIN = re.compile(r"[A-Za-z0-9/._~+=@,:-]*")


def path_problem(path: str) -> str | None:
    """Why `path` is not safe to hand to a storage client, or None. Accepted: absolute, no
    reserved, control, whitespace or look-alike characters, no '.', '..' or empty segments;
    one trailing slash is allowed (a directory)."""
    problem = literal_problem(path)
    if problem is not None or _PLAIN.fullmatch(path):
        return problem
    for char in dict.fromkeys(path):
        problem = _character_problem(char, path)
        if problem is not None:
            return problem
    return None


def _character_problem(char: str, path: str) -> str | None:
    if char in RESERVED:
        return f"must not contain {char!r} ({RESERVED[char]}{_decoded(char, path)})"
    kind = _KINDS.get(unicodedata.category(char))
    if kind is not None:
        return f"must not contain {kind} U+{ord(char):04X}"
    compatible = unicodedata.normalize("NFKC", char)
    if compatible != char and (_SPECIAL.intersection(compatible) or _has_kind(compatible)):
        return f"must not contain {char!r} (U+{ord(char):04X}, normalised to {compatible!r})"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_kind(text: str) -> bool:
    return any(unicodedata.category(char) in _KINDS for char in text)


def _decoded(char: str, path: str) -> str:
    """For '%': what the first escape sequence decodes to, e.g. `: '%2e%2e' is '..'`."""
    match = _ESCAPE.search(path) if char == "%" else None
    return f": {match[0]!r} is {unquote(match[0])!r}" if match else ""


def storage_path(value: str, what: str) -> str:
    """A configured directory or file path, validated (ValueError naming the offending
    character or segment) and normalised: without its trailing slash, never '/'."""
    problem = path_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}, got {value!r}")
    normalised = value.removesuffix("/")
    if not normalised:
        raise ValueError(f"{what} must not be the root directory '/'")
    return normalised


def literal_problem(path: str) -> str | None:
    """Why `path` cannot be sent as a literal, percent-encoded URL path (a dot-segment or an
    empty segment has no encoding a server keeps), or None. Other characters are encoded."""
    if not path.startswith("/"):
        return "must be an absolute path (starting with '/')"
    if not _encodable(path):
        return "must be valid Unicode (no lone surrogates)"
    segments = path[1:].split("/")
    if len(segments) > 1 and segments[-1] == "":
        segments.pop()
    for segment in segments:
        if segment in (".", ".."):
            return f"must not contain a {segment!r} segment"
        if segment == "" and path != "/":
            return "must not contain '//' (an empty segment)"
    return None
