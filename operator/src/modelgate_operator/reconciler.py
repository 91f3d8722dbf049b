"""The level-triggered loop: on any trigger, render the whole set of routes and converge.

Events only wake the loop; each pass lists every ModelRoute in scope, reads the Secrets they
reference, renders, publishes when the checksum changed, counts the rollout and writes the
statuses that changed. Passes are debounced, so a burst of applies becomes one write. The
blocking pass runs in a worker thread; :mod:`.handlers` owns the task and posts the Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .basefile import BaseFile
from .conditions import ConditionChange, Rollout, Withheld, build_status, status_differs
from .errors import BaseConfigError, PublishError
from .peering import blocking_peers
from .publishing import KubeGateway, Published, secret_hash
from .rendering import Rendered, SecretLookup, referenced_secrets, render
from .resources import GROUP, KIND, VERSION, ModelRoute, parse_route
from .retrying import Backoff
from .rollout import RolloutHistory, probe_all
from .settings import OperatorSettings
from .sizing import CONFIG_TOO_LARGE, Oversize, check_size

logger = logging.getLogger("modelgate_operator")


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_base(settings: OperatorSettings,
              on_refused: Callable[[str], None] | None = None) -> BaseFile | None:
    """The base document at start-up; raises :class:`BaseConfigError` (no good one to keep).
    ``on_refused`` hears about each version refused later (see :class:`BaseFile`)."""
    if settings.base_config is None:
        return None
    base = BaseFile(settings.base_config, on_refused)
    base.load()
    return base


def base_config_reporter(kube: KubeGateway) -> Callable[[str], None]:
    """Posts a refused base config as a Warning Event; an Event is a courtesy, never an error."""
    def report(message: str) -> None:
        try:
            kube.post_base_config_warning(message, utc_now())
        except PublishError as exc:
            logger.warning("could not post an Event about the base config: %s", exc)
    return report


@dataclass(slots=True)
class PassResult:
    """Outcome of one reconcile pass."""

    published: bool = False
    rolling_out: bool = False
    paused: bool = False
    """kopf peering gives way to another replica: this pass read the peering and wrote nothing."""
    refused: Oversize | None = None
    """The document was over the size budget: neither the ConfigMap nor the Secret was written."""
    events: list[tuple[dict[str, Any], ConditionChange]] = field(default_factory=list)


class Reconciler:
    """State that survives between passes: the rollout history and the referenced Secrets.

    ``peering_identity`` is this replica's kopf peering identity (None: standalone, no peers).
    With one, every pass first checks the peering objects and does nothing while a live peer
    with a higher or equal priority exists (kopf pauses only its watch streams, not this loop).
    ``base`` is re-read on every active pass when its file changed (:mod:`.basefile`).
    """

    def __init__(self, settings: OperatorSettings, kube: KubeGateway,
                 base: BaseFile | None, now: Callable[[], str] = utc_now,
                 peering_identity: str | None = None) -> None:
        self.settings = settings
        self.kube = kube
        self.base = base
        self.now = now
        self.peering_identity = peering_identity
        self.history = RolloutHistory()
        self.referenced: frozenset[tuple[str, str]] = frozenset()
        self.writes = 0
        self.paused = False
        self.refused: str | None = None
        """Checksum of the last document refused as too large, until one is published again."""

    def _paused_by_peers(self) -> bool:
        if self.peering_identity is None:
            return False
        blockers = blocking_peers(self.kube.peering_statuses(), self.peering_identity,
                                  self.settings.priority, datetime.datetime.now(datetime.UTC))
        if bool(blockers) != self.paused:
            if blockers:
                logger.info("kopf peering: standing by for %s", ", ".join(blockers))
            else:
                logger.info("kopf peering: active (priority %d)", self.settings.priority)
        self.paused = bool(blockers)
        return self.paused

    def _routes(self) -> list[tuple[ModelRoute, dict[str, Any]]]:
        s = self.settings
        found = []
        for body in self.kube.list_routes():
            route = parse_route(body, s.gateway_name)
            if route.gateway != s.gateway_name:
                continue
            if s.namespaces and route.namespace not in s.namespaces:
                continue
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                continue  # on its way out: leave it out of the config now
            found.append((route, body))
        return found

    def reconcile(self) -> PassResult:
        """One blocking pass. Raises PublishError (retry later) or BaseConfigError.

        A document over the size budget is not an error: nothing is written to the gateway's
        objects, every route it would serve reports it, and the pass ends normally, so the next
        one runs on the next change or resync rather than on a retry timer.
        """
        if self._paused_by_peers():
            return PassResult(paused=True)
        pairs = self._routes()
        routes = [r for r, _ in pairs]
        refs = referenced_secrets(routes)
        self.referenced = frozenset(refs)
        secrets = {ref: self.kube.read_secret(*ref) for ref in sorted(refs)}
        published = self.kube.read_published()
        rendered = self._render(routes, secrets, published.generation + 1)
        result = PassResult()
        if rendered.checksum != published.checksum:
            result.refused = check_size(rendered.document)
        self._note_refusal(rendered.checksum, result.refused)
        if result.refused is None:
            result.published = self._publish(rendered, published)
            self.history.record(rendered.checksum, rendered.served)
        pods = self.kube.gateway_pods()
        checksums = probe_all(pods, self.settings.readyz_timeout_seconds)
        rollouts = self.history.count(checksums, ((r.key, r.generation) for r in routes))
        now = self.now()
        refused = result.refused
        for route, body in pairs:
            verdict = rendered.verdicts[route.key]
            rollout = rollouts.get(route.key, Rollout(0, len(pods)))
            previous = body.get("status")
            withheld = (None if refused is None
                        else Withheld(CONFIG_TOO_LARGE, refused.route_message(route.key)))
            status, changes = build_status(route, verdict, rollout, previous, now, withheld)
            if verdict.included and refused is None and rollout.serving < rollout.total:
                result.rolling_out = True
            if status_differs(status, previous):
                self.kube.patch_route_status(route.namespace, route.name, status)
            result.events.extend((_event_ref(body), change) for change in changes)
        self._post_events(result.events, now)
        return result

    def _render(self, routes: list[ModelRoute], secrets: SecretLookup, generation: int) -> Rendered:
        """Render with the current base, picking up a changed base file first.

        A reloaded base that validates alone but not with the routes (nothing to blame on a
        route) is refused like an invalid file: the previous base renders instead.
        """
        base = self.base
        if base is not None:
            base.refresh()
        while True:  # at most twice: reject_current() goes back once, then returns False
            try:
                rendered = render(routes, secrets, base.config if base is not None else None,
                                  gateway=self.settings.gateway_name, generation=generation)
            except BaseConfigError as exc:
                if base is not None and base.reject_current(str(exc)):
                    continue
                raise
            if base is not None:
                base.confirm()
            return rendered

    def _publish(self, rendered: Rendered, published: Published) -> bool:
        """Write the Secret and the ConfigMap where their content changed; True if the latter."""
        if published.secret_hash != secret_hash(rendered.secret_data):
            # Keys first: a gateway that sees the new document already finds its keys.
            self.kube.publish_secret(rendered.secret_data, self.kube.current_secret_keys())
            self.writes += 1
        if rendered.checksum == published.checksum:
            return False
        self.kube.publish_config(rendered.document, rendered.checksum, published.generation + 1)
        self.writes += 1
        logger.info("published config %s (generation %d, %d models)", rendered.checksum,
                    published.generation + 1, len(rendered.config.spec.models))
        return True

    def _note_refusal(self, checksum: str, refused: Oversize | None) -> None:
        """Log a refused document once (at error level) and the recovery once.

        Not every pass: the condition and Event carry the state; a resync every 30 s would
        repeat the same line without news.
        """
        if refused is not None:
            if checksum != self.refused:
                logger.error("config %s not published, the gateways keep the last published "
                             "one: %s", checksum, refused.summary())
            self.refused = checksum
        elif self.refused is not None:
            logger.info("the rendered config fits the size budget again: publishing resumed")
            self.refused = None

    def _post_events(self, events: list[tuple[dict[str, Any], ConditionChange]], now: str) -> None:
        for ref, change in events:
            try:
                self.kube.post_event(ref, change.event_type, change.reason,
                                     f"{change.type}={change.status}: {change.message}", now)
            except PublishError as exc:  # an Event is a courtesy; the status already says it
                logger.warning("could not post an Event: %s", exc)


def _event_ref(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if meta.get(k)}}


async def run_loop(reconciler: Reconciler, wakeup: asyncio.Event) -> None:
    """Forever: wait for a trigger, debounce, run a pass in a thread.

    Only a failed pass schedules another one by itself, after a delay that doubles per consecutive
    failure (``retry_seconds``, 5 s, up to ``retry_max_seconds``, 60 s), so an API that keeps
    failing costs one attempt and one warning line per delay, not a spin. A failure talking to the
    API (:class:`PublishError`, an unreachable API server included) is expected and logged as one
    line; only a surprise gets a traceback. A refused (oversized) document is a finished pass:
    retrying could not change the outcome, only a change or the resync can.
    """
    s = reconciler.settings
    loop = asyncio.get_running_loop()
    rollout_until = 0.0
    backoff = Backoff(s.retry_seconds, s.retry_max_seconds)
    while True:  # one pass per trigger (or per resync period); ends when the task is cancelled
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), s.resync_seconds)
        started = loop.time()
        while True:  # debounce: wait for quiet, but never longer than the cap
            wakeup.clear()
            remaining = min(s.debounce_seconds, started + s.debounce_max_seconds - loop.time())
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except TimeoutError:
                break
        wakeup.clear()
        try:
            result = await asyncio.to_thread(reconciler.reconcile)
        except PublishError as exc:
            delay = backoff.failed(exc.delay)
            logger.warning("reconcile failed, retrying in %.3gs: %s", delay, exc)
            loop.call_later(delay, wakeup.set)
            continue
        except BaseConfigError as exc:
            logger.error("nothing published: %s", exc)
            continue
        except Exception:  # the loop must survive surprises; the next pass may succeed
            delay = backoff.failed()
            logger.exception("reconcile failed unexpectedly, retrying in %.3gs", delay)
            loop.call_later(delay, wakeup.set)
            continue
        failures = backoff.succeeded()
        if failures:
            logger.info("reconcile succeeded again after %d failed attempt%s", failures,
                        "" if failures == 1 else "s")
        if result.published:
            rollout_until = loop.time() + s.rollout_deadline_seconds
        if result.rolling_out and loop.time() < rollout_until:
            loop.call_later(s.rollout_poll_seconds, wakeup.set)
