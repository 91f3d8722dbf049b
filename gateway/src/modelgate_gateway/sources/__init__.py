"""Where config documents and secret values come from: a file on disk or the Kubernetes API.

A source yields a :class:`ConfigSnapshot` whenever anything it watches changed; the reloader
(:mod:`modelgate_gateway.reloading`) validates and compiles it. Sources never validate.
"""

from .base import ConfigSnapshot, ConfigSource

__all__ = ["ConfigSnapshot", "ConfigSource"]
