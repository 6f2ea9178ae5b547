"""Credentials, below everything that uses them: secrets and the scrubber, token sources,
OIDC, TLS."""
