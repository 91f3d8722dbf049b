"""Size limits of what the operator publishes: never write what Kubernetes would refuse to store.

The API server refuses a ConfigMap or Secret whose values add up to more than 1 MiB
(``MaxSecretSize``: 1,048,576 bytes, counted as UTF-8 bytes, keys not counted), and the whole
object must also fit etcd's request limit. A rendered config is therefore spread over shards
(:mod:`modelgate_gateway.config.sharding`, planned by :mod:`.layout`), each within
:data:`OBJECT_BUDGET_BYTES`. A route too large for any one object is left out on its own
(:data:`ROUTE_TOO_LARGE`); a config that needs more shards than allowed is not published at
all and every route reports :data:`CONFIG_TOO_LARGE`. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .resources import RouteKey

CONFIGMAP_DATA_LIMIT = 1_048_576
"""The API server's cap on the summed ``data`` + ``binaryData`` values of one ConfigMap."""

OBJECT_BUDGET_BYTES = 1_000_000
"""Largest payload the operator puts into one ConfigMap or Secret: 48,576 bytes (4.6 %) under
the API server's cap.

The margin is for what else travels with it: the object's metadata (labels, annotations, owner
references, the ``managedFields`` the API server adds) counts against etcd's request limit and
the watch events that carry the object to every gateway, and an object right at the wall would
turn the next small edit into a failure. A round figure is easy to compare with ``wc -c``.
"""

SHARD_TARGET_BYTES = 256 * 1024
"""Preferred size of one shard. A change rewrites one shard (plus the small head and index),
so smaller shards mean fewer bytes written and pushed to every gateway per change; larger ones
mean fewer objects. At 256 KiB a config stays one object up to a few hundred routes and 10,000
ordinary routes take 16 shards of about 200 KB."""

INDEX_RESERVE_BYTES = 16 * 1024
"""Room kept for the index next to the head in the first ConfigMap (32 shards and 32 Secrets
named with their hashes take about 8 KB)."""

CONFIG_TOO_LARGE = "ConfigTooLarge"
"""Ready reason of every route the refused document would have served."""

ROUTE_TOO_LARGE = "RouteTooLarge"
"""Accepted reason of a route whose entries alone exceed what one object may hold."""

_LARGEST_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Oversize:
    """A rendered config that no allowed split fits, and how many bytes each route adds."""

    size: int
    why: str
    """What does not fit, e.g. "it does not fit in 32 shards of at most 1,000,000 bytes each"."""
    route_bytes: Mapping[RouteKey, int] = field(default_factory=dict)

    def largest(self) -> list[tuple[RouteKey, int]]:
        """The routes adding the most bytes, largest first (ties by namespace/name)."""
        ranked = sorted(self.route_bytes.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:_LARGEST_SHOWN]

    def _largest_text(self) -> str:
        return ", ".join(f"{ns}/{name} ({size:,})" for (ns, name), size in self.largest())

    def summary(self) -> str:
        """One line for the operator's log."""
        routes = sum(self.route_bytes.values())
        return (f"the rendered config is {self.size:,} bytes: {self.why}; {len(self.route_bytes)} "
                f"routes add {routes:,} bytes, the base config and envelope "
                f"{self.size - routes:,}; largest routes: {self._largest_text() or 'none'}")

    def route_message(self, key: RouteKey) -> str:
        """The Ready message of one route: the sizes, this route's share, and what to do."""
        share = self.route_bytes.get(key)
        mine = f" This route adds {share:,} bytes." if share is not None else ""
        largest = f" Largest routes: {self._largest_text()}." if self.route_bytes else ""
        return (f"Not published: the gateway config would be {self.size:,} bytes and {self.why} "
                f"(a ConfigMap holds at most {CONFIGMAP_DATA_LIMIT:,}); the gateways keep serving "
                f"the last published config.{mine}{largest} Delete or shrink routes (fewer "
                "deployments, shorter mock texts, headers and query parameters), shorten the "
                "operator's base config, or allow more shards (MODELGATE_OPERATOR_MAX_SHARDS, the "
                "chart's operator.maxConfigShards).")


def route_sizes(group_sizes: Mapping[str, int]) -> dict[RouteKey, int]:
    """Bytes per route from the splitter's per-group sizes (groups are ``namespace/name``)."""
    sizes: dict[RouteKey, int] = {}
    for group, size in group_sizes.items():
        namespace, sep, name = group.partition("/")
        if sep and "/" not in name:
            sizes[(namespace, name)] = sizes.get((namespace, name), 0) + size
    return sizes
