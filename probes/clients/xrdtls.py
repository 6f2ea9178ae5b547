"""roots:// server certificates, checked by lakeprobe because XrdCl 5.5 does not check them all.

XrdCl verifies a roots:// server's certificate chain against X509_CERT_DIR, and its host
name against the certificate's DNS names (then the subject CN when the certificate has no
subjectAltName), except when the URL's host is spelled `localhost`, `127.0.0.1` or `[::1]`
(XrdClTls.cc, Tls::Connect, unchanged up to 5.8: it passes no host name to XrdTlsSocket
then). No setting turns that off. A daemon probing its own host as roots://localhost would
trust any certificate from a trusted CA, whatever host it was issued for.

So `verify_tls` (run by xrdhandshake.check_xrootd on the same socket, after the server
agreed to switch to TLS) does the TLS handshake itself and checks, for every host:
- the chain, by OpenSSL against `resolve_ca_dir(target.ca_dir)` (as every HTTPS request);
- the URL's host against the certificate's names (`names_match`): an IP address against the
  IP address SANs, a name against the DNS SANs (a `*.` wildcard as the whole left-most label
  only), the subject CN only when there is no DNS SAN, as OpenSSL's X509_check_host does
  for Python and curl.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed
from lakeprobe.probes.credentials.tls import client_ssl_context

Certificate = Mapping[str, Any]  # SSLSocket.getpeercert(): a verified certificate, decoded


def names_match(host: str, cert: Certificate) -> bool:
    """Whether the certificate is valid for `host` (a name, or an IP address in brackets or
    not): RFC 6125 / OpenSSL rules, see the module docstring."""
    wanted = host.strip("[]")
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        name = wanted.rstrip(".").lower()
        dns = [value for kind, value in _san(cert) if kind == "DNS"]
        return any(_dns_match(pattern, name) for pattern in dns or _common_names(cert))
    return any(_ip_equal(value, address) for kind, value in _san(cert) if kind == "IP Address")


def describe_names(cert: Certificate) -> str:
    """The names a certificate is valid for, as `DNS:x, IP:y` (CN:z when it has no SAN)."""
    names = [_name(kind, value) for kind, value in _san(cert)]
    names = names or [f"CN:{name}" for name in _common_names(cert)]
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _name(kind: str, value: str) -> str:
    if kind != "IP Address":
        return f"{kind}:{value}"
    try:
        return f"IP:{ipaddress.ip_address(value)}"  # ::1, not 0:0:0:0:0:0:0:1
    except ValueError:
        return f"IP:{value}"


def _san(cert: Certificate) -> list[tuple[str, str]]:
    return [(str(kind), str(value).strip()) for kind, value in cert.get("subjectAltName", ())]


def _common_names(cert: Certificate) -> list[str]:
    rdns: Iterable[Iterable[tuple[str, str]]] = cert.get("subject", ())
    return [value for rdn in rdns for key, value in rdn if key == "commonName"]


def _dns_match(pattern: str, name: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == name
    rest = pattern[2:]  # a wildcard needs two labels after it (no *.org) and stands for one
    label, dot, tail = name.partition(".")
    return "." in rest and "*" not in rest and bool(label and dot) and tail == rest


def _ip_equal(value: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(value) == address
    except ValueError:
        return False


async def verify_tls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, ca_dir: Path | None
) -> StepOutcome | None:
    """TLS over the connection the server has just switched (kXR_gotoTLS); None when the
    chain and `host` check out, else a `tls` failure naming what is wrong."""
    port = writer.get_extra_info("peername", ("", 0))[1]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        # names_match checks the name after the handshake, so that a mismatch can say which
        # names the certificate holds (OpenSSL's own check fails without them)
        context = client_ssl_context(ca_dir, check_hostname=False)
    except (OSError, ssl.SSLError) as error:
        return failed(Reason.TLS, f"CA directory {ca_dir}: {error}")
    sni = None if _is_address(host) else host  # SNI carries names only (RFC 6066)
    try:
        await writer.start_tls(context, server_hostname=sni)
    except ssl.SSLCertVerificationError as error:
        return failed(Reason.TLS, f"{where}: TLS certificate not trusted: {error.verify_message}")
    except ssl.SSLError as error:
        return failed(Reason.TLS, f"{where}: TLS handshake failed: {error.reason or error}")
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        return failed(Reason.TLS, f"{where}: connection closed in the TLS handshake ({error})")
    cert = writer.get_extra_info("peercert") or {}
    if not names_match(host, cert):
        return failed(
            Reason.TLS,
            f"{where}: TLS certificate is not valid for {host.strip('[]')}: "
            f"it names {describe_names(cert) or 'no host'}",
        )
    return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
