"""Rollout status: which config checksum each gateway pod serves, read from its /readyz.

Blocking (stdlib ``urllib``), so it runs in the reconciler's worker thread; pods are probed in
parallel with a per-request timeout. A pod that does not answer counts as not serving.
:class:`RolloutHistory` remembers which routes' generations each recent checksum contained.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..kube.client import PodEndpoint
from ..rendering.resources import RouteKey
from .conditions import Rollout

# Enough to cover a rolling restart of a large gateway Deployment; older checksums are no
# longer served anywhere in practice, and a pod on an unknown checksum counts as not serving.
_HISTORY = 64
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


class RolloutHistory:
    """checksum -> the (route, generation) pairs that document served; bounded, newest last."""

    def __init__(self) -> None:
        self._served: OrderedDict[str, frozenset[tuple[RouteKey, int]]] = OrderedDict()

    def record(self, checksum: str, served: frozenset[tuple[RouteKey, int]]) -> None:
        self._served[checksum] = served
        self._served.move_to_end(checksum)
        while len(self._served) > _HISTORY:
            self._served.popitem(last=False)

    def count(self, pod_checksums: Iterable[str | None],
              routes: Iterable[tuple[RouteKey, int]]) -> Mapping[RouteKey, Rollout]:
        """For each (route, generation): pods whose applied document contains it."""
        applied = list(pod_checksums)
        result = {}
        for key, generation in routes:
            serving = sum(
                1 for checksum in applied
                if checksum is not None and (key, generation) in self._served.get(checksum, ())
            )
            result[key] = Rollout(serving=serving, total=len(applied))
        return result
