"""The transfer family: third-party copies between site pairs (http-tpc, xrootd-tpc)."""
