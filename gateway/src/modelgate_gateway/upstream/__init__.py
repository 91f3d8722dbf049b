"""Calling upstream deployments: the executor, its HTTP client and, under ``translation``,
the translators for upstreams that do not speak the Responses API.
"""
