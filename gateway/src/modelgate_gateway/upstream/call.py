"""What an upstream call is: the request to send (:class:`Call`) and what the executor needs of the
process to send it (:class:`ExecutorDeps`). Shared by the executor and its choice of targets
(:mod:`.targeting`), which both read them; :mod:`.executor` re-exports both for the handlers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..observability.recording import Observer
from ..runtime import DeploymentRuntime, TargetRuntime
from .balancing import HealthBoard
from .pools import PoolBoard
from .transport import Transport


class ExecutorDeps(Protocol):
    """What the executor uses of the process's shared state (``appstate.GatewayState`` is one):
    health and deferrals, the observer for health changes, the balancing dice, and the transport
    for a deployment. Narrow on purpose: the executor sits below the application state."""

    @property
    def board(self) -> HealthBoard: ...

    @property
    def observer(self) -> Observer: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def servers(self) -> PoolBoard: ...

    def transport(self, dep: DeploymentRuntime) -> Transport: ...


@dataclass(slots=True)
class Call:
    """What to send; ``updates`` are the body fields rewritten per deployment (model, ids)."""

    method: str
    path: str
    payload: dict[str, Any] | None = None
    raw: bytes | None = None
    query: Mapping[str, str] | None = None
    stream: bool = False
    pinned: str | None = None
    """Deployment that must serve (it holds the response's state); no balancing, no fallback.
    ``name@member``: that one server of a pool deployment."""
    updates: dict[str, Any] = field(default_factory=dict)
    rewrite_model: bool = False
    """Send each deployment's own upstream model name (create calls)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Client headers to pass on (``spec.forwardHeaders``)."""
    session: str | None = None
    """The session the request names (:mod:`.affinity`): the model's deployment is chosen by it."""
    ranking: tuple[tuple[TargetRuntime, ...], tuple[str, ...]] | None = None
    """The session's ranking of the targets it was last computed for (a model's fallbacks have others)."""
    home: str | None = None
    """The session's own deployment (first in its ranking); set by :func:`open_call`."""
    home_org: str | None = None
    """Its organisation: a deployment of another gets the request without organisation-bound items."""
    prefer: str | None = None
    """With ``session``: the deployment ranked first (a WebSocket lane's, which holds its upstream socket)."""
