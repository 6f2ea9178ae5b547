"""Probe implementations: each module tests one kind of storage access."""
