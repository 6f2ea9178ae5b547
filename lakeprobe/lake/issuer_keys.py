"""The local issuer's state on disk (shared by the server process and its controller): the
ES256 signing key, its JWKS, the registered clients, and token minting."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scitokens
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
ALGORITHM = "ES256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0600 from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class IssuerState:
    """Paths of the files in an issuer's state directory."""

    state_dir: Path

    @property
    def config_path(self) -> Path:
        return self.state_dir / "issuer.json"  # port, issuer URL, lifetime, TLS files

    @property
    def key_path(self) -> Path:
        return self.state_dir / "signing-key.pem"

    @property
    def clients_path(self) -> Path:
        return self.state_dir / "clients.json"  # {client_id: {"secret", "lifetime"}}

    def create_key(self) -> None:
        """A new P-256 signing key, unless one exists already."""
        if self.key_path.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(self.key_path, pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.key_path}: not an EC private key")
        return key

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.config_path.read_text())
        return config

    def clients(self) -> dict[str, dict[str, Any]]:
        if not self.clients_path.exists():
            return {}
        clients: dict[str, dict[str, Any]] = json.loads(self.clients_path.read_text())
        return clients

    def write_clients(self, clients: dict[str, dict[str, Any]]) -> None:
        write_private(self.clients_path, json.dumps(clients, indent=1).encode())


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The public half as a JWK; `kid` is its RFC 7638 thumbprint."""
    numbers = key.public_key().public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    thumbprint = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return {**jwk, "kid": _b64url(hashlib.sha256(thumbprint).digest()), "alg": ALGORITHM,
            "use": "sig"}  # fmt: skip


def jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return {"keys": [public_jwk(key)]}


def mint(
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    subject: str,
    scope: str,
    audience: str | list[str],
    lifetime: int,
) -> str:
    """A signed WLCG token (negative `lifetime`: already expired). Empty scope: no claim."""
    token = scitokens.SciToken(key=key, key_id=public_jwk(key)["kid"], algorithm=ALGORITHM)
    token["sub"] = subject
    token["aud"] = audience
    if scope:
        token["scope"] = scope
    token["wlcg.ver"] = "1.0"
    token["jti"] = str(uuid.uuid4())
    serialized: bytes = token.serialize(issuer=issuer, lifetime=lifetime)
    return serialized.decode()
