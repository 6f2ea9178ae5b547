"""The tape family: an endpoint's tape QoS class (tape-recall)."""
