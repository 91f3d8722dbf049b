"""Canonical JSON of a config document and its checksum.

Canonical means: sorted keys, no insignificant whitespace, UTF-8, exclude fields left unset.
The operator writes the checksum into ``metadata.checksum``; the gateway recomputes it on load,
so a truncated or hand-edited ConfigMap is caught before it is compiled.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(data: Any) -> bytes:
    """Byte-stable JSON for any JSON-compatible value."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_checksum(spec: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of a document's ``spec`` (a plain dict)."""
    return "sha256:" + hashlib.sha256(canonical_json(spec)).hexdigest()
