"""The shared core every probe builds on: results, steps, context, targets, the runner,
test-file naming, path safety and the state store."""
