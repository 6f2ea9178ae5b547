"""The daemon's lifecycle: config reloads, the scheduler and its admission slots, the HTTP
server. exporter/ keeps the results store and the exposition."""
