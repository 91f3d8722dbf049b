"""Plain values the Kubernetes client returns, so their users need not import the client.

Pure: no ``kubernetes`` here; :mod:`.client` builds them from the API's answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    """A gateway pod's /readyz address."""

    name: str
    ip: str
    port: int
