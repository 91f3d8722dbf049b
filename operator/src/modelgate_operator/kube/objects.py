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
class Stored:
    """A ConfigMap or Secret of the gateway's namespace as read: data (Secret values decoded)
    and annotations."""

    data: Mapping[str, str | bytes]
    annotations: Mapping[str, str]


def content_hash(data: Mapping[str, str | bytes]) -> str:
    """Hash of an object's data (key and value of every entry); kept in an annotation so an
    unchanged object is never rewritten."""
    digest = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        digest.update(key.encode() + b"\0" + (value.encode() if isinstance(value, str) else value) + b"\0")
    return "sha256:" + digest.hexdigest()
