"""Hypothesis strategies for storage paths: plain ones, dangerous ones, and any string."""

from __future__ import annotations

from hypothesis import strategies as st

PLAIN = "abcXYZ019._-~+=@:,!$&'()*éßжλ日本"
# Each of these, anywhere in a plain path, must make it invalid.
DANGEROUS = [
    "?", "#", "%", "%2e%2e", "%2F", "\\", ";", "\n", "\t", "\x00", "\x7f", "\x85", " ",
    "\u00a0", "\u2028", "\u200b", "\u202e", "\ufeff", "\ue000", "\ud800", "\uff1f", "\uff03",
    "\uff05", "\uff0f", "\uff3c", "\uff0e\uff0e", "\u2025", "/../", "/./", "//",
]  # fmt: skip
# Any string, from pieces that matter to URL parsers.
RICH = st.lists(st.sampled_from([*PLAIN, "/", ".", *DANGEROUS]), max_size=16).map("".join)


@st.composite
def plain_paths(draw: st.DrawFn) -> str:
    """Absolute paths of ordinary segments (dots inside names, '...', unicode letters),
    sometimes with a trailing slash."""
    segment = st.text(alphabet=PLAIN, min_size=1, max_size=8).filter(lambda s: s not in {".", ".."})
    path = "/" + "/".join(draw(st.lists(segment, min_size=1, max_size=4)))
    return path + ("/" if draw(st.booleans()) else "")


@st.composite
def dangerous_paths(draw: st.DrawFn) -> str:
    """A plain path with one dangerous form inserted anywhere."""
    path, bad = draw(plain_paths()), draw(st.sampled_from(DANGEROUS))
    at = draw(st.integers(0, len(path)))
    return path[:at] + bad + path[at:]
