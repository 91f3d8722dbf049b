"""Seeing what the gateway does: request records, the observer, metrics and their exposition, the request log,
pricing and token estimates."""
