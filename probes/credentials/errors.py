"""Why a credential could not be had: apart from tokens.py, so that a run without a token
(whose credential step only reports that it needs none) does not load the token sources."""

from __future__ import annotations


class CredentialError(Exception):
    """A configured credential cannot be loaded. The message names the source, never a value."""


class IssuerError(CredentialError):
    """The issuer could not be reached or refused a token. Names the endpoint, never a value."""
