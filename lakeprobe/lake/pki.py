"""A throw-away test PKI: one CA and one host certificate valid for the loopback names."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

_VALID_BEFORE_NOW = datetime.timedelta(hours=1)
_VALID_AFTER_NOW = datetime.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TestPki:
    """Paths of the PEM files of a test PKI. `ca_dir` is a hashed CA directory
    (`<subject_hash>.0`), usable as X509_CERT_DIR, curl --capath or xrootd's tlsca certdir."""

    __test__ = False  # not a pytest test class, despite the name

    ca_cert: Path
    ca_key: Path
    ca_dir: Path
    host_cert: Path
    host_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lakeprobe test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _VALID_BEFORE_NOW)
        .not_valid_after(now + _VALID_AFTER_NOW)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _make_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = _name("lakeprobe test CA")
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


_LOOPBACK_NAMES: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
)


def _make_host(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: tuple[x509.GeneralName, ...] = _LOOPBACK_NAMES,
) -> x509.Certificate:
    san = x509.SubjectAlternativeName(list(names))
    common_name = next((n.value for n in names if isinstance(n, x509.DNSName)), "host")
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return (
        _builder(_name(common_name), ca.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(eku, critical=False)
        .add_extension(san, critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _subject_hash(cert_path: Path) -> str:
    """OpenSSL's subject hash (the name of the file in a hashed CA directory)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl not found on PATH")
    out = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(cert_path)],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return out.stdout.strip()


def make_test_pki(directory: Path) -> TestPki:
    """Create a CA and a host certificate (SAN localhost, 127.0.0.1, ::1) in `directory`.

    Keys are EC P-256, unencrypted, mode 0600; everything else is world-readable so that a
    server running under another user can read the certificates and the CA directory."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    host_key = ec.generate_private_key(ec.SECP256R1())
    ca = _make_ca(ca_key)
    pki = TestPki(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        ca_dir=directory / "certificates",
        host_cert=directory / "hostcert.pem",
        host_key=directory / "hostkey.pem",
    )
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca)
    _write_key(pki.host_key, host_key)
    _write_cert(pki.host_cert, _make_host(host_key, ca, ca_key))
    pki.ca_dir.mkdir(exist_ok=True)
    pki.ca_dir.chmod(0o755)
    _write_cert(pki.ca_dir / f"{_subject_hash(pki.ca_cert)}.0", ca)
    log.debug("test PKI created in %s", directory)
    return pki


def issue_host_cert(pki: TestPki, directory: Path, dns_names: tuple[str, ...]) -> TestPki:
    """`pki` with a new host certificate and key from its CA, valid only for `dns_names`
    (e.g. ("other.example",): a server whose certificate names another host)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key}: not an EC key")
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    host_key = ec.generate_private_key(ec.SECP256R1())
    names = tuple(x509.DNSName(name) for name in dns_names)
    issued = dataclasses.replace(
        pki, host_cert=directory / "hostcert.pem", host_key=directory / "hostkey.pem"
    )
    _write_key(issued.host_key, host_key)
    _write_cert(issued.host_cert, _make_host(host_key, ca, ca_key, names))
    return issued
