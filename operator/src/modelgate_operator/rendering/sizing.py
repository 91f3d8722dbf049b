"""Size budget of the rendered document: never publish what Kubernetes would refuse to store.

The API server refuses a ConfigMap whose ``data`` and ``binaryData`` values add up to more than
1 MiB (``MaxSecretSize``: 1,048,576 bytes, counted as UTF-8 bytes, keys not counted), and the
whole object must also fit etcd's request limit. Sending a larger document would fail on every
pass, forever, with nothing telling the route owners why. So the reconciler measures the
document first and, over :data:`CONFIG_BUDGET_BYTES`, publishes nothing and reports
:data:`CONFIG_TOO_LARGE` on the routes instead. Pure: no I/O. Neighbours: :mod:`.rendering`
produces the document, :mod:`.reconciler` acts on the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelgate_gateway.config import canonical_json

from .resources import RouteKey

CONFIGMAP_DATA_LIMIT = 1_048_576
"""The API server's cap on the summed ``data`` + ``binaryData`` values of one ConfigMap."""

CONFIG_BUDGET_BYTES = 1_000_000
"""Largest document the operator publishes: 48,576 bytes (4.6 %) under the API server's cap.

The document is the ConfigMap's only value, so the cap alone would allow 1,048,576 bytes. The
margin is for what else travels with it: the object's metadata (labels, the checksum and
generation annotations, owner references, the ``managedFields`` the API server adds) counts
against etcd's request limit and the watch events that carry the object to every gateway, and a
document right at the wall would turn the next small edit into a failure. A round decimal figure
also makes the number in the condition message easy to compare with ``wc -c``.
"""

CONFIG_TOO_LARGE = "ConfigTooLarge"
"""Ready reason of every route the refused document would have served."""

_LARGEST_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Oversize:
    """A rendered document over the budget, and how many bytes each route adds to it."""

    size: int
    budget: int
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
        return (f"the rendered config is {self.size:,} bytes, over the budget of {self.budget:,} "
                f"(a ConfigMap holds at most {CONFIGMAP_DATA_LIMIT:,}); {len(self.route_bytes)} "
                f"routes add {routes:,} bytes, the base config and envelope "
                f"{self.size - routes:,}; largest routes: {self._largest_text() or 'none'}")

    def route_message(self, key: RouteKey) -> str:
        """The Ready message of one route: the sizes, this route's share, and what to do."""
        share = self.route_bytes.get(key)
        mine = f" This route adds {share:,} bytes." if share is not None else ""
        largest = f" Largest routes: {self._largest_text()}." if self.route_bytes else ""
        return (f"Not published: the gateway config would be {self.size:,} bytes, over the "
                f"operator's budget of {self.budget:,} (a ConfigMap holds at most "
                f"{CONFIGMAP_DATA_LIMIT:,}); the gateways keep serving the last published "
                f"config.{mine}{largest} Delete or shrink routes (fewer deployments, shorter "
                "mock texts, headers and query parameters) or shorten the operator's base config.")


def route_bytes(document: bytes) -> dict[RouteKey, int]:
    """Bytes each route adds to a rendered document: its model plus the deployments it targets.

    Rendered models carry ``route: {namespace, name}`` and name their own deployments in
    ``targets``; models of the base config carry no ``route`` and are not counted. Each entry is
    measured as canonical JSON, so the figures add up to the document's size up to the
    separators between entries.
    """
    spec: Mapping[str, Any] = json.loads(document).get("spec") or {}
    deployments = {str(d.get("name")): len(canonical_json(d)) for d in spec.get("deployments") or []}
    sizes: dict[RouteKey, int] = {}
    for model in spec.get("models") or []:
        ref = model.get("route")
        if not isinstance(ref, Mapping):
            continue
        key = (str(ref.get("namespace")), str(ref.get("name")))
        targets = {str(t.get("deployment")) for t in model.get("targets") or []}
        sizes[key] = (sizes.get(key, 0) + len(canonical_json(model))
                      + sum(deployments.get(name, 0) for name in targets))
    return sizes


def check_size(document: bytes, budget: int = CONFIG_BUDGET_BYTES) -> Oversize | None:
    """None when ``document`` fits ``budget`` (exactly the budget fits); otherwise the details."""
    size = len(document)
    if size <= budget:
        return None
    return Oversize(size=size, budget=budget, route_bytes=route_bytes(document))
