"""Rollout status: how many gateway pods serve each route's current generation.

The pods report the checksum they serve (:mod:`~modelgate_operator.kube.probing`); :class:`RolloutHistory`
remembers which routes' generations each recent checksum contained. Pure.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from ..rendering.resources import RouteKey
from .conditions import Rollout

# Enough to cover a rolling restart of a large gateway Deployment; older checksums are no
# longer served anywhere in practice, and a pod on an unknown checksum counts as not serving.
_HISTORY = 64


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
