"""The tokens of the token-authz cases: most from the configured issuer (client credentials
with the case's scope and audience, cached by the OIDC client), three made here:
- tampered: a valid read token with one signature character changed;
- unknown issuer: signed with a key of this process, naming an issuer nobody trusts;
- expired: a read token fetched earlier and never sent anywhere, used once it has expired,
  so the server cannot have cached it as valid (xrootd 5.5.3 accepts a token it has seen
  for about a minute after expiry). Until then the case is skipped, saying how long.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from lakeprobe.probes.authz.cases import TokenKind
from lakeprobe.probes.credentials.oidc import IssuedToken, OidcClient
from lakeprobe.probes.credentials.secrets import Secret

_HELD_MAX = 1024  # held expiry tokens kept at most (one per endpoint and audience)


@dataclass(frozen=True, slots=True)
class Scopes:
    base: str  # the test directory as the scopes name it
    path_a: str  # the fixture directory `a` as the scopes name it

    def of(self, kind: TokenKind) -> str:
        read = f"storage.read:{self.base}"
        return {
            TokenKind.CREATE: f"storage.create:{self.base}",
            # With read, as the compliance suite: XrdHttp (5.5.3) must read a file's metadata
            # before it deletes it, so a modify-only DELETE is refused there.
            TokenKind.MODIFY: f"{read} storage.modify:{self.base}",
            TokenKind.MODIFY_ONLY: f"storage.modify:{self.base}",
            TokenKind.PATH_A: f"storage.read:{self.path_a}",
        }.get(kind, read)

    @property
    def full(self) -> str:
        """The probe's own token, for the fixtures and the cleanup."""
        return " ".join(f"storage.{s}:{self.base}" for s in ("read", "create", "modify"))


@dataclass(slots=True)
class CaseTokens:
    client: OidcClient
    endpoint: str  # URL: a held token is never shown to any other endpoint
    scopes: Scopes
    audience: str
    wrong_audience: str
    unknown_issuer: str
    expired_grace: float  # how long past its expiry a held token is first used
    held: OrderedDict[Any, Any]  # the run's state store: tokens held for the expired case
    tokens: dict[TokenKind, Secret] = field(default_factory=dict)
    waiting: dict[TokenKind, str] = field(default_factory=dict)  # kind -> why not yet
    full: Secret | None = None

    async def load(self, kinds: set[TokenKind]) -> None:
        """Fetch or make the tokens of `kinds`; raises CredentialError (IssuerError)."""
        self.full = (await self.client.issue(self.scopes.full, self.audience)).secret
        for kind in sorted(kinds - {TokenKind.NONE}):
            if kind is TokenKind.EXPIRED:
                await self._expired()
            elif kind is TokenKind.TAMPERED:
                self.tokens[kind] = tamper(await self._issued(TokenKind.READ, self.audience))
            elif kind is TokenKind.UNKNOWN_ISSUER:
                self.tokens[kind] = self_signed(self.unknown_issuer, self.scopes, self.audience)
            elif kind is TokenKind.WRONG_AUDIENCE:
                self.tokens[kind] = await self._issued(kind, self.wrong_audience)
            else:
                self.tokens[kind] = await self._issued(kind, self.audience)

    async def _issued(self, kind: TokenKind, audience: str) -> Secret:
        return (await self.client.issue(self.scopes.of(kind), audience)).secret

    async def _expired(self) -> None:
        key = (id(self.client), self.endpoint, self.scopes.base, self.audience)
        held = self.held.get(key)
        if held is None:
            held = await self.client.issue(self.scopes.of(TokenKind.READ), self.audience,
                                           fresh=True)  # fmt: skip
            self._hold(key, held)
        if held.expires_at is None:
            self.waiting[TokenKind.EXPIRED] = "the issuer gave the token no expiry"
            return
        left = held.expires_at + self.expired_grace - time.time()
        if left > 0:
            self.waiting[TokenKind.EXPIRED] = (
                f"holding a never-used token until it has expired (in {left:.0f} s)"
            )
            return
        self.tokens[TokenKind.EXPIRED] = held.secret
        self.held.pop(key, None)  # used now: the next expiry check needs a new unseen token

    def _hold(self, key: tuple[object, ...], token: IssuedToken) -> None:
        self.held[key] = token
        while len(self.held) > _HELD_MAX:
            self.held.popitem(last=False)


def tamper(token: Secret) -> Secret:
    """The token with one signature character changed (in the middle, where all six bits
    of the character count, so the signature bytes really differ)."""
    head, sep, signature = token.reveal().rpartition(".")
    if not sep or len(signature) < 2:
        return Secret(token.reveal() + "x")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return Secret(f"{head}.{signature[:middle]}{swapped}{signature[middle + 1 :]}")


def self_signed(issuer: str, scopes: Scopes, audience: str) -> Secret:
    """A well-formed WLCG token with the read scope, signed by a key no server knows."""
    import scitokens

    token = scitokens.SciToken(key=_unknown_key(), key_id="lakeprobe-unknown", algorithm="ES256")
    token.update_claims(
        {"sub": "lakeprobe", "aud": audience, "scope": scopes.of(TokenKind.READ),
         "wlcg.ver": "1.0", "jti": str(uuid.uuid4())}
    )  # fmt: skip
    serialized = token.serialize(issuer=issuer, lifetime=600)
    return Secret(serialized.decode() if isinstance(serialized, bytes) else str(serialized))


@functools.cache
def _unknown_key() -> object:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())
