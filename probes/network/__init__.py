"""The network probes: perfSONAR archives and iperf3, per site pair and IP version."""
