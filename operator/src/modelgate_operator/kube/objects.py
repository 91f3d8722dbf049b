"""Plain values the Kubernetes client returns, so their users need not import the client.

Pure: no ``kubernetes`` here; :mod:`.client` builds them from the API's answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    """A gateway pod's /readyz address."""

    name: str
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class Published:
    """What the gateway's ConfigMap and Secret hold now, from their annotations."""

    checksum: str | None = None
    generation: int = 0
    secret_hash: str | None = None


def secret_hash(data: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key] + b"\0")
    return "sha256:" + digest.hexdigest()
