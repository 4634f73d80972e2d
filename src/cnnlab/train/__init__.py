"""Training workbench: the loop, callbacks, metrics, diagnostics and tuning."""
