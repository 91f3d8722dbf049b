"""The contract between config sources and the reloader.

Kept tiny on purpose: the file source (plain config file + mounted secrets directory) and the
Kubernetes source (ConfigMap + Secret watched through the API) both implement it, and tests can
feed snapshots by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """One observed state of the config document and the secret store."""

    document: bytes
    """Raw document bytes, exactly as stored."""
    fmt: Literal["json", "yaml"]
    """How to parse ``document``."""
    origin: str
    """Human-readable origin for logs, e.g. a path or ``configmap ns/name``."""
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    """``secretKey`` references resolve here (key name -> value)."""
    base_dir: str = "."
    """Directory that relative ``file`` references resolve against."""
    keys_grace_seconds: float = 0.0
    """How long a ``secretKey`` reference missing from ``secrets`` is waited for before the
    document counts as rejected. Sources that deliver the config and the secret store separately
    (two watches, two mounted volumes) set it: the store may lag the config by a moment, and a
    later snapshot brings the key. 0: reject at once."""


class ConfigSource(Protocol):
    """Yields the current snapshot first, then one per change; never raises for bad content."""

    def snapshots(self) -> AsyncIterator[ConfigSnapshot]: ...

    async def report_applied(self, checksum: str) -> None:
        """Called after a snapshot was compiled and swapped in (rollout status); may be a no-op."""

    def wake(self) -> None:
        """Look for a change now rather than at the next poll (SIGHUP); a no-op for push sources."""
