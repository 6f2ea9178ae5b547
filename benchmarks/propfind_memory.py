"""Benchmark: peak memory of parsing a PROPFIND listing of the largest accepted size (16 MiB).

    .venv/bin/python benchmarks/propfind_memory.py

Side by side, each in a fresh subprocess (peak RSS growth and tracemalloc peak): the whole
body parsed into an ElementTree, as the webdav probe did before, and the streaming
MultistatusParser fed 64 KiB chunks, as it does now (the body is never held whole either).
Two listings: XrdHttp-like entries with a few properties, and dense entries with many empty
dead properties (what a hostile server sends to make a tree as large as possible).
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tracemalloc
import xml.etree.ElementTree as ET

from lakeprobe.probes.clients.httpparse import MAX_LISTING_BYTES, MultistatusParser

CHUNK = 64 * 1024


def listing(dense: bool) -> bytes:
    head = b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">'
    props = b"<D:x/>" * 200 if dense else b"<D:getcontentlength>1048576</D:getcontentlength>"
    parts, size, n = [head], len(head), 0
    while size < MAX_LISTING_BYTES - 4096:
        href = b"/lakeprobe/lakeprobe-host-1700000000-%032x" % n
        entry = (b"<D:response><D:href>%s</D:href><D:propstat><D:prop>%s</D:prop>"
                 b"</D:propstat></D:response>") % (href, props)  # fmt: skip
        parts.append(entry)
        size += len(entry)
        n += 1
    parts.append(b"</D:multistatus>")
    return b"".join(parts)


def measure(kind: str, dense: bool) -> dict[str, float]:
    body = listing(dense)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    if kind == "tree":
        entries = len(ET.fromstring(body).findall("{DAV:}response"))
    else:
        parser = MultistatusParser()
        for offset in range(0, len(body), CHUNK):
            parser.feed(body[offset : offset + CHUNK])
        entries = len(parser.close())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"entries": entries, "tracemalloc_mib": peak / 2**20, "rss_growth_mib": grown / 1024}


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(measure(sys.argv[1], sys.argv[2] == "dense")))
        sys.exit(0)
    for dense in (False, True):
        for kind in ("tree", "stream"):
            shape = "dense" if dense else "xrdhttp"
            out = subprocess.run([sys.executable, __file__, kind, shape],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            result = json.loads(out.stdout)
            print(f"{shape:8} {kind:7} entries {result['entries']:7}  tracemalloc peak "
                  f"{result['tracemalloc_mib']:7.1f} MiB  RSS growth "
                  f"{result['rss_growth_mib']:7.1f} MiB")  # fmt: skip
