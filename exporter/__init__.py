"""The daemon side: scheduler, results store, Prometheus exporter, HTTP server."""
