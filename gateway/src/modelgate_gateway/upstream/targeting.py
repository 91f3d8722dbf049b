"""Which deployment (or pool server) a call tries next: the executor's choice of targets.

The order is the requested model's deployments, then each fallback model's
(:func:`chain`); within a model, the balancing strategy (or the session's ranking) picks among
the deployments not tried yet and not full (:func:`next_target`); a pool deployment is then
narrowed to one of its servers (:func:`server_to_try`). A pinned call (the deployment holds the
response's state) has a chain of one. What happens when nothing is left is the executor's
(:mod:`.executor`) and the rate-limit waits' (:mod:`.ratelimits`).
"""

from __future__ import annotations

import time

from ..observability.recording import AttemptOutcome
from ..runtime import DeploymentRuntime, ModelRuntime, RuntimeConfig
from .affinity import pick_for_session, ranked
from .balancing import pick
from .call import Call, ExecutorDeps
from .fallback import Failure
from .picking import server_for
from .ratelimits import Waits


def candidate_models(runtime: RuntimeConfig, model: ModelRuntime) -> list[ModelRuntime | None]:
    if not model.fallbacks:
        return [model]
    return [model, *(runtime.models[name] for name in model.fallbacks if name in runtime.models)]


def server_to_try(
    state: ExecutorDeps,
    runtime: RuntimeConfig,
    call: Call,
    name: str,
    tried: set[str],
    progress: tuple[Waits | None, list[Failure]],
) -> DeploymentRuntime | None:
    """The server of pool deployment ``name`` to try; None (the pool counted as tried) when none is left."""
    found = server_for(
        state.servers, state.board, state.rng, runtime, name, tried=tried, session=call.session, updates=call.updates
    )
    if found is None:
        waits, failures = progress
        tried.add(name)
        if waits is not None:
            waits.give_up(name)
        if (pool := state.servers.get(name)) is None or not pool.members:
            failures.append(Failure(name, AttemptOutcome.SERVER_ERROR, "no ready server in its pool"))
    return found


def chain(runtime: RuntimeConfig, model: ModelRuntime | None, call: Call) -> list[ModelRuntime | None]:
    """The models to try in order; for a session, also its own deployment and organisation."""
    if model is None or call.pinned is not None:
        return [model]
    if call.session is not None:
        order = ranked(call.session, model.targets)
        prefer = call.prefer
        if prefer is not None and prefer in order:
            order = (prefer, *(name for name in order if name != prefer))
        call.ranking = (model.targets, order)
        call.home = call.ranking[1][0]
        call.home_org = runtime.deployments[call.home].organization
    return candidate_models(runtime, model)


def waits_for(
    state: ExecutorDeps, models: list[ModelRuntime | None], call: Call, model: ModelRuntime | None, deadline: float
) -> Waits:
    max_wait = model.max_retry_after_seconds if model is not None else 0.0
    return Waits(state.board, models, call.pinned, deadline, max_wait)


def next_target(
    state: ExecutorDeps, runtime: RuntimeConfig, call: Call, current: ModelRuntime | None, tried: set[str]
) -> str | None:
    pinned = call.pinned
    if pinned is not None:
        if pinned in tried:
            return None
        # A pinned create honours its deployment's Retry-After (Waits decides); follow-ups don't.
        if current is not None and state.board.deferred_for(pinned, time.monotonic()) > 0:
            return None
        return pinned
    if current is None:
        return None
    session = call.session
    if session is not None:
        if call.ranking is None or call.ranking[0] is not current.targets:
            call.ranking = (current.targets, ranked(session, current.targets))
        return pick_for_session(
            call.ranking[1],
            state.board,
            now=time.monotonic(),
            exclude=tried,
            capacity=lambda n: has_capacity(state, runtime, n),
        )
    return pick(
        current.strategy,
        current.targets,
        state.board,
        now=time.monotonic(),
        rng=state.rng,
        exclude=tried,
        capacity=lambda n: has_capacity(state, runtime, n),
        floor=current.adaptive_floor,
    )


def has_capacity(state: ExecutorDeps, runtime: RuntimeConfig, name: str) -> bool:
    dep = runtime.deployments.get(name)
    if dep is None:
        dep = runtime.deployments.get(name.partition("@")[0]) if "@" in name else None
        if dep is None:
            return False
        name = dep.name
    return dep.max_concurrent is None or state.board.get(name).outstanding < dep.max_concurrent


__all__ = ["chain", "has_capacity", "next_target", "server_to_try", "waits_for"]
