"""Which config checksum each gateway pod serves, read from its /readyz.

Blocking (stdlib ``urllib``), so it runs in the reconciler's worker thread; pods are probed in
parallel with a per-request timeout. A pod that does not answer counts as not serving.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .objects import PodEndpoint

_PROBE_WORKERS = 16


def probe_checksum(pod: PodEndpoint, timeout: float) -> str | None:
    """The checksum a pod reports as applied, or None (unreachable, not ready, bad body)."""
    url = f"http://{pod.ip}:{pod.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read(65536))
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read(65536))
        except ValueError:
            return None
        finally:
            exc.close()
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("ready") is not True:
        return None
    checksum = body.get("checksum")
    return checksum if isinstance(checksum, str) else None


def probe_all(pods: Sequence[PodEndpoint], timeout: float) -> list[str | None]:
    if not pods:
        return []
    with ThreadPoolExecutor(max_workers=min(_PROBE_WORKERS, len(pods))) as pool:
        return list(pool.map(lambda pod: probe_checksum(pod, timeout), pods))
