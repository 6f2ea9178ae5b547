"""The authorization family: WLCG token compliance (token-authz)."""
