"""Third-party copies through gfal2, the library FTS uses: root:// pairs and davs:// / https://
pairs (pull or push). One gfal2 context per copy (~2 ms to create), run on a copy thread
(probes/clients/copyjob.py); when the probe gives up, `ctx.cancel()` is called from the event loop.

What each copy sets (gfal2 2.21.3, gfal2-python 1.12.0, davix 0.8.4):
- HTTP: `DEFAULT_COPY_MODE` "3rd pull" / "3rd push" (TransferParameters has no copy mode in
  1.12; the option takes gfal2's transfer-type names, "pull" alone is ignored), no fallback to
  the other mode and no streamed copy through this host: a TPC probe tests TPC only.
  `OPERATION_TIMEOUT` = time left; `RETRIEVE_BEARER_TOKEN` off (no macaroon requests).
- Transfer parameters: checksum mode both (or the one asked for: FTS's `verify_checksum`),
  adler32, the expected value; overwrite; timeout =
  time left; no proxy delegation (on root://, with delegation a missing source is reported
  as "Destination does not support delegation").
- Tokens: davs/https via `ctx.cred_set(<endpoint URL>, BEARER)` for both URL spellings of the
  endpoint; root:// via `?authz=` in the URL (the xrootd plugin has no bearer support).
  gfal2 asks for GSI proxy delegation (`Credential: gridsite`, rejected with 400) whenever the
  passive HTTP side has no token; lakeprobe has no proxies, so that side then gets a
  placeholder token: an open server ignores it, a protected one refuses it (auth).
- CA directory: davix takes it from X509_CERT_DIR when a context is created, XrdCl once per
  process; gfal2 2.21.3 has no option for it. The daemon must run with X509_CERT_DIR set
  (never changed here); a different `target.ca_dir` is logged. Verification stays on.

Measured quirks: davix's connect/TLS-handshake timeout is a fixed 30 s that neither the
operation timeout nor ctx.cancel() shortens, so a hung HTTPS endpoint holds a copy thread
~30 s. gfal2's xrootd plugin sets no XrdCl copy init timeout (default 600 s): CPInitTimeout
is bounded process-wide here; after a failed copy the plugin deletes the destination with
XrdCl's default request timeout (60 s). Perf markers (the monitor callback) come only for
copies longer than the server's marker period: a quick HTTP copy reports no first marker.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import re
import threading
from typing import Any

from lakeprobe.probes.clients.copyjob import (
    CopyEnd,
    CopyError,
    CopyStats,
    CopyWatch,
    run_copy,
    side_of,
    suppress_callback_errors,
    warn_unapplied_ca_dir,
)
from lakeprobe.probes.clients.httpcopy import copy_refused_reason
from lakeprobe.probes.clients.tpcmarkers import failure_reason
from lakeprobe.probes.clients.xrdasync import (
    ERR_ERROR_RESPONSE,
    XrdStatus,
    client_module,
    with_authz,
)
from lakeprobe.probes.clients.xrdcopy import copy_reason
from lakeprobe.probes.core.outcome import NO_SPACE_TEXT, Reason
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import RedactingFilter

log = logging.getLogger(__name__)

ROOT_SCHEMES = frozenset({"root", "roots"})
HTTP_SCHEMES = frozenset({"davs", "https", "dav", "http"})
COPY_MODES = {"pull": "3rd pull", "push": "3rd push"}
CHECKSUM_MODES = ("both", "source", "target")  # gfal2's GFALT_CHECKSUM_*, FTS's b/s/t
PLACEHOLDER_TOKEN = "lakeprobe-no-token"  # not a secret: sent when no token is configured
XRDCL_COPY_INIT_TIMEOUT = 30  # seconds; XrdCl's CPInitTimeout for gfal2's root:// copies
_CHECKSUM = ("CHECKSUM MISMATCH", "CHECKSUM ERROR", "DO NOT MATCH")
_TIMEOUT = ("TIMED OUT", "TIMEOUT", "OPERATION EXPIRED")
_TLS = ("CERTIFICATE", "SSL", "TLS")
_CONNECT = ("COULD NOT CONNECT", "CONNECTION ERROR", "CONNECTION REFUSED")
_CONNECT_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}
_COPY_REFUSED = re.compile(r"\bcopy HTTP ([45]\d\d)\b")  # the active side answered the COPY
_XRDCL_SERVER_ERROR = re.compile(r"Server responded with an error: \[(30\d\d)\]")
_TRANSFER_FAILURE = re.compile(r"Transfer failure: (.*)", re.DOTALL)  # a COPY's `failure:`


@functools.cache
def _gfal2() -> Any:
    """gfal2, imported on first use. gfal2-python logs through the `gfal2` logger, events
    included, with full URLs (root:// ones carry ?authz= tokens): that logger gets a
    redacting filter, so no handler of the process ever sees a token from it."""
    import gfal2

    logging.getLogger("gfal2").addFilter(RedactingFilter())
    return gfal2


@functools.cache
def _bound_xrdcl_copy_init() -> None:
    if not client_module().EnvPutInt("CPInitTimeout", XRDCL_COPY_INIT_TIMEOUT):
        log.warning("XRD_CPINITTIMEOUT from the environment overrides lakeprobe's %d s",
                    XRDCL_COPY_INIT_TIMEOUT)  # fmt: skip


def gfal_reason(
    code: int, message: str, source: CopyEnd, destination: CopyEnd, mode: str = "pull"
) -> Reason:
    """The Reason of a gfal2 error (GError: errno `code`, `message`), the one the native
    engine gives for the same failure: gfal2 relays the same wire text, so XrdCl's server
    errors map as in xrdcopy.copy_reason, a COPY refused (`copy HTTP <status>`) as in
    httpcopy.copy_refused_reason and a copy's `failure:` verdict (`Transfer failure: ...`)
    as in tpcmarkers.failure_reason. Otherwise the side is named by the HTTP plugin's stage
    prefix ("SOURCE CHECKSUM ...", "DESTINATION OVERWRITE ...") or a path in the message."""
    text = message.upper()
    if any(marker in text for marker in _CHECKSUM):
        return Reason.CHECKSUM_MISMATCH
    if code in (errno.ENOSPC, errno.EDQUOT) or NO_SPACE_TEXT.search(message):
        return Reason.NO_SPACE
    if code in (errno.ETIMEDOUT, errno.ECANCELED) or any(m in text for m in _TIMEOUT):
        return Reason.TIMEOUT
    if any(marker in text for marker in _TLS):
        return Reason.TLS
    if code in _CONNECT_ERRNOS or any(marker in text for marker in _CONNECT):
        return Reason.CONNECT
    native = _native_reason(message, source, destination, mode)
    if native is not None:
        return native
    side = side_of(message, source, destination)
    if text.startswith(("SOURCE", "DESTINATION")):
        side = "source" if text.startswith("SOURCE") else "destination"
    if side is not None:
        return Reason.SOURCE_MISSING if side == "source" else Reason.DESTINATION_ERROR
    if code in (errno.EACCES, errno.EPERM):
        return Reason.AUTH
    return Reason.TPC_FAILURE


def _native_reason(message: str, source: CopyEnd, destination: CopyEnd, mode: str
                   ) -> Reason | None:  # fmt: skip
    """The native engine's reason where gfal2 relays the text that engine reads, else None."""
    if server := _XRDCL_SERVER_ERROR.search(message):
        status = XrdStatus(False, ERR_ERROR_RESPONSE, int(server.group(1)), message)
        return copy_reason(status, source, destination)
    if refused := _COPY_REFUSED.search(message):
        return copy_refused_reason(int(refused.group(1)), message, mode)
    if verdict := _TRANSFER_FAILURE.search(message):
        reason = failure_reason(verdict.group(1), mode)
        return reason if reason is not Reason.TPC_FAILURE else None
    return None


def _url(end: CopyEnd) -> str:
    url = end.target.url_for(end.path)
    return with_authz(url, end.token) if end.target.protocol in ROOT_SCHEMES else url


def _prefixes(target: Target) -> list[str]:
    """Both spellings of an HTTP endpoint (davs/https, dav/http): gfal2 looks tokens up by URL."""
    rest = target.url.split("://", 1)[1]
    schemes = ("davs", "https") if target.protocol in ("davs", "https") else ("dav", "http")
    return [f"{scheme}://{rest}" for scheme in schemes]


class _GfalJob:
    """One copy. run() is called on a copy thread, cancel() from the event loop."""

    def __init__(self, source: CopyEnd, destination: CopyEnd, mode: str, adler32: str | None,
                 overwrite: bool, watch: CopyWatch, checksum_mode: str = "both"
                 ) -> None:  # fmt: skip
        self.source, self.destination, self.mode = source, destination, mode
        self.adler32, self.overwrite, self.watch = adler32, overwrite, watch
        self.checksum_mode = checksum_mode
        self.stage = "PREPARE"  # the last gfal2 event, for the detail
        self._ctx: Any = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            if self._ctx is not None:
                self._ctx.cancel()

    def run(self) -> tuple[int, str] | None:
        """None on success, else (errno, message)."""
        gfal2 = _gfal2()
        ctx = gfal2.creat_context()
        with self._lock:
            self._ctx = ctx
        if self.watch.cancelled:
            return errno.ECANCELED, "abandoned before it started"
        timeout = self.watch.timeout_seconds()
        self._configure(ctx, timeout)
        try:
            ctx.filecopy(self._params(ctx, timeout), _url(self.source), _url(self.destination))
        except gfal2.GError as error:
            return int(error.code), str(error.message).replace("\\x00", "").strip()
        return None

    def _configure(self, ctx: Any, timeout: int) -> None:
        ctx.set_opt_string("HTTP PLUGIN", "DEFAULT_COPY_MODE", COPY_MODES[self.mode])
        ctx.set_opt_boolean("HTTP PLUGIN", "ENABLE_FALLBACK_TPC_COPY", False)
        ctx.set_opt_boolean("HTTP PLUGIN", "ENABLE_STREAM_COPY", False)
        ctx.set_opt_boolean("HTTP PLUGIN", "RETRIEVE_BEARER_TOKEN", False)
        ctx.set_opt_integer("HTTP PLUGIN", "OPERATION_TIMEOUT", timeout)
        passive = self.source if self.mode == "pull" else self.destination
        for end in (self.source, self.destination):
            if end.target.protocol not in HTTP_SCHEMES:
                continue
            token = end.token.reveal() if end.token is not None else None
            if token is None and end is passive:
                token = PLACEHOLDER_TOKEN
            for prefix in _prefixes(end.target) if token is not None else ():
                ctx.cred_set(prefix, ctx.cred_new("BEARER", token))

    def _params(self, ctx: Any, timeout: int) -> Any:
        gfal2 = _gfal2()
        params = ctx.transfer_parameters()
        params.overwrite = self.overwrite
        params.timeout = timeout
        params.proxy_delegation = False
        params.create_parent = False
        if self.adler32:
            checksum_mode = getattr(gfal2.checksum_mode, self.checksum_mode)
            params.set_checksum(checksum_mode, "adler32", self.adler32)
        params.event_callback = suppress_callback_errors(self._on_event)
        params.monitor_callback = suppress_callback_errors(self._on_progress)
        return params

    def _on_event(self, event: Any) -> None:
        self.stage = str(event.stage)
        self.watch.activity()
        if self.stage == "TRANSFER:ENTER":
            self.watch.transfer_started()
        elif self.stage == "TRANSFER:EXIT":
            self.watch.transfer_ended()
        elif self.stage == "TRANSFER:TYPE":
            self.watch.transfer_type = str(event.description)

    def _on_progress(self, _src: str, _dst: str, _avg: int, _inst: int, done: int, _t: int
                     ) -> None:  # fmt: skip
        self.watch.progress(int(done))


async def gfal_copy(
    source: CopyEnd,
    destination: CopyEnd,
    *,
    resources: ProbeResources,
    deadline: float,
    stall_seconds: float,
    mode: str = "pull",
    adler32: str | None = None,
    size: int | None = None,
    overwrite: bool = True,
    checksum_mode: str = "both",
) -> CopyStats:
    """Copy source -> destination with gfal2 before `deadline` (event-loop time), checking
    `adler32` at both ends when given (`checksum_mode` "source" or "target": at that end
    only, as FTS's `verify_checksum`). `size` (the source's, if known) is reported as
    transferred on success when gfal2 reported fewer bytes. The copy runs on
    `resources.threads`. Raises CopyError."""
    if mode not in COPY_MODES:
        raise ValueError(f"copy mode must be one of {', '.join(COPY_MODES)}: {mode!r}")
    if checksum_mode not in CHECKSUM_MODES:
        raise ValueError(f"checksum mode must be one of {', '.join(CHECKSUM_MODES)}")
    for end in (source, destination):
        warn_unapplied_ca_dir(end.target, log, "gfal2", resources.notices)
        if end.target.protocol in ROOT_SCHEMES:
            _bound_xrdcl_copy_init()
    watch = CopyWatch(deadline)
    job = _GfalJob(source, destination, mode, adler32, overwrite, watch, checksum_mode)
    failure = await run_copy(resources.threads, job.run, watch, stall_seconds, job.cancel)
    note = ""
    if failure is not None and adler32 is not None and _checksum_unsupported(*failure):
        # An end that cannot compute adler32 lacks a feature, the copy is not broken: copy
        # again without gfal2's comparison; the probe's verify step checks the copy itself
        # and applies the endpoint's `checksums` policy.
        note = f"gfal2 compared no checksum: {failure[1]}"
        watch = CopyWatch(deadline)
        job = _GfalJob(source, destination, mode, None, True, watch)
        failure = await run_copy(resources.threads, job.run, watch, stall_seconds, job.cancel)
    if failure is not None:
        code, message = failure
        reason = gfal_reason(code, message, source, destination, mode)
        raise CopyError(reason, f"gfal2 (errno {code}, last event {job.stage}): {message}")
    stats = watch.stats(size if size is not None and watch.transferred < size else None)
    return dataclasses.replace(stats, note=note) if note else stats


def _checksum_unsupported(code: int, message: str) -> bool:
    """gfal2's answer when an end cannot compute the checksum asked for. Measured: nginx and
    XrdHttp without `xrootd.chksum`, errno 38 "checksum calculation for adler32 not
    supported"; root:// without it, errno 95 "[3013] query chksum is not supported"."""
    text = message.upper()
    asked = "CHECKSUM" in text or "CHKSUM" in text
    return code in (errno.ENOSYS, errno.EOPNOTSUPP) and asked and "MISMATCH" not in text
