"""Helpers more than one probe family uses (sweeping leftovers): above the clients, below
the families."""
