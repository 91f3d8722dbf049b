"""Relaying upstream bodies to the client: SSE framing, id rewriting, usage extraction."""
