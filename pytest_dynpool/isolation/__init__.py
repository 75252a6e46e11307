"""Per-item isolation of process-wide state (output, logs, warnings, diagnostics) on the pool."""
