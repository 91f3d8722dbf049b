"""Seeing what the gateway does and what it costs: request records, the observer, metrics and their exposition,
the request log, usage as billed, pricing, charging, token estimates and OTLP traces."""
