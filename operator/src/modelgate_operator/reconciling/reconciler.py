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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelgate_gateway.config.sharding import TooLarge

from ..errors import BaseConfigError, KubeApiError
from ..keys.reconciling import KeyRound, Keys
from ..kube.objects import PodEndpoint
from ..kube.peering import blocking_peers
from ..kube.probing import probe_all
from ..rendering.basefile import BaseFile
from ..rendering.layout import Layout, plan
from ..rendering.render import BuildCache, Rendered, SecretLookup, referenced_secrets, render
from ..rendering.resources import GROUP, KIND, VERSION, ModelRoute, parse_route
from ..rendering.sizing import Oversize, route_sizes
from ..settings import OperatorSettings
from .cluster import Cluster
from .committing import Committer, Published
from .conditions import ConditionChange, Rollout, build_status, status_differs
from .memo import Memo, ParseCache, route_digest, routes_fingerprint, secrets_fingerprint
from .retrying import Backoff
from .rollout import RolloutHistory
from .sidecars import Inputs, SidecarPass, SidecarReconciler, route_view

logger = logging.getLogger("modelgate_operator")
Planned = tuple[Rendered, Layout | None, Oversize | None]
"""A rendered document with its layout, or why no layout fits."""
Probe = Callable[[Sequence[PodEndpoint], float], list[str | None]]
"""Reads the checksum each gateway pod serves (:func:`~modelgate_operator.kube.probing.probe_all`)."""


class _Clock:
    """Where a pass spends its time, for the debug log (a pass over 10,000 routes takes seconds)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._laps: list[tuple[str, float]] = []

    def lap(self, what: str) -> None:
        now = time.monotonic()
        self._laps.append((what, now - self._last))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{what} {seconds:.2f}s" for what, seconds in self._laps)


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_base(settings: OperatorSettings, on_refused: Callable[[str], None] | None = None) -> BaseFile | None:
    """The base document at start-up; raises :class:`BaseConfigError` (no good one to keep).
    ``on_refused`` hears about each version refused later (see :class:`BaseFile`)."""
    if settings.base_config is None:
        return None
    base = BaseFile(settings.base_config, on_refused)
    base.load()
    return base


def base_config_reporter(kube: Cluster) -> Callable[[str], None]:
    """Posts a refused base config as a Warning Event; an Event is a courtesy, never an error."""

    def report(message: str) -> None:
        try:
            kube.post_base_config_warning(message, utc_now())
        except KubeApiError as exc:
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
    """No allowed split fits the document: nothing was written."""
    cleaning_up: bool = False
    """Unused keys or objects wait for the rollout to finish before they are removed."""
    incomplete: list[str] = field(default_factory=list)
    """What this pass could not do in some sidecar namespaces (it did the rest): retried."""
    events: list[tuple[dict[str, Any], ConditionChange]] = field(default_factory=list)


class Reconciler:
    """State that survives between passes: the rollout history and the referenced Secrets.

    ``peering_identity`` is this replica's kopf peering identity (None: standalone, no peers).
    With one, every pass first checks the peering objects and does nothing while a live peer
    with a higher or equal priority exists (kopf pauses only its watch streams, not this loop).
    ``base`` is re-read on every active pass when its file changed (:mod:`.basefile`).
    ``keys``: the ModelGateKeys' part of each pass (:mod:`.keys`); None serves the base's keys only.
    ``sidecars``: sidecar mode's part of each pass (:mod:`.sidecars`), after the shared gateway's.
    """

    def __init__(
        self,
        settings: OperatorSettings,
        kube: Cluster,
        base: BaseFile | None,
        now: Callable[[], str] = utc_now,
        peering_identity: str | None = None,
        *,
        probe: Probe = probe_all,
        keys: Keys | None = None,
        sidecars: SidecarReconciler | None = None,
    ) -> None:
        self.settings = settings
        self.sidecars = sidecars
        self.kube = kube
        self.probe = probe
        self.base = base
        self.now = now
        self.peering_identity = peering_identity
        self.history = RolloutHistory()
        self.keys = keys
        self.referenced: frozenset[tuple[str, str]] = frozenset()
        self.committer = Committer(kube, settings)
        self._parsed: ParseCache[ModelRoute] = ParseCache(lambda b: parse_route(b, settings.gateway_name))
        self._built: BuildCache = {}
        self._planned: Memo[Planned] = Memo()
        self.first_seen: dict[str, float] = {}
        """When this replica first saw each checksum published (monotonic), for the clean-up
        deadline."""
        self.paused = False
        self.refused: str | None = None
        """Checksum of the last document refused as too large, until one is published again."""

    @property
    def writes(self) -> int:
        """Objects this replica wrote or deleted (a standby replica writes none)."""
        return self.committer.writes

    def _paused_by_peers(self) -> bool:
        if self.peering_identity is None:
            return False
        blockers = blocking_peers(
            self.kube.peering_statuses(),
            self.peering_identity,
            self.settings.priority,
            datetime.datetime.now(datetime.UTC),
        )
        if bool(blockers) != self.paused:
            if blockers:
                logger.info("kopf peering: standing by for %s", ", ".join(blockers))
            else:
                logger.info("kopf peering: active (priority %d)", self.settings.priority)
        self.paused = bool(blockers)
        return self.paused

    def _routes(self, clock: _Clock) -> tuple[list[tuple[ModelRoute, dict[str, Any]]], str]:
        """The routes this operator renders, with their bodies, and a fingerprint of them all."""
        s = self.settings
        bodies = self.kube.list_routes()
        clock.lap("list")
        digests = [route_digest(body) for body in bodies]
        parsed = self._parsed.parse_all(bodies, digests)
        fingerprint = routes_fingerprint(digests)
        clock.lap("parse")
        found = []
        for route, body in zip(parsed, bodies, strict=True):
            if route.gateway != s.gateway_name:
                continue
            if s.namespaces and route.namespace not in s.namespaces:
                continue
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                continue  # on its way out: leave it out of the config now
            found.append((route, body))
        return found, fingerprint

    def reconcile(self) -> PassResult:
        """One blocking pass. Raises KubeApiError (retry later) or BaseConfigError.

        A document over the size budget is not an error: nothing is written to the gateway's
        objects, every route it would serve reports it, and the pass ends normally, so the next
        one runs on the next change or resync rather than on a retry timer.
        """
        if self._paused_by_peers():
            self.committer.forget()  # the active peer writes meanwhile
            return PassResult(paused=True)
        clock = _Clock()
        pairs, fingerprint = self._routes(clock)
        routes = [r for r, _ in pairs]
        refs = referenced_secrets(routes)
        keys = self.keys.collect() if self.keys is not None else KeyRound(self.settings.gateway_name, [], {})
        self.referenced = frozenset(refs) | keys.referenced
        secrets = {ref: self.kube.read_secret(*ref) for ref in sorted(refs)}
        published = self.committer.read()
        result = PassResult()
        clock.lap("read")
        keys_fingerprint = routes_fingerprint(route_digest(body) for _, body in keys.keys)
        rendered, layout, result.refused = self._render_and_plan(
            [r for r in routes if r.sidecars.shared_gateway],
            secrets,
            published,
            (fingerprint, secrets_fingerprint(secrets), keys_fingerprint, secrets_fingerprint(keys.secrets)),
            keys,
        )
        clock.lap("render")
        self._note_refusal(rendered.checksum, result.refused)
        if layout is not None:
            result.published = self._publish(rendered, layout, published)
            self.history.record(rendered.checksum, rendered.served)
        clock.lap("publish")
        pods = self.kube.gateway_pods()
        checksums = self.probe(pods, self.settings.readyz_timeout_seconds)
        if layout is not None:
            result.cleaning_up = self.committer.clean_up(
                layout, published.objects, self._served(rendered.checksum, checksums)
            )
            result.rolling_out = result.cleaning_up
        clock.lap("rollout")
        rollouts = self.history.count(checksums, ((r.key, r.generation) for r in routes))
        sidecars = self._sidecars(routes, secrets, result, clock)
        now = self.now()
        refused = result.refused
        written = 0
        for route, body in pairs:
            if route.key in sidecars.unchanged:
                continue  # a sidecar namespace of its could not be read: its status waits for the retry
            view = route_view(
                route, rendered.verdicts, rollouts.get(route.key, Rollout(0, len(pods))), refused, sidecars
            )
            previous = body.get("status")
            status, changes = build_status(
                route,
                view.verdict,
                view.rollout,
                previous,
                now,
                view.withheld,
                sidecars=view.sidecars,
                sidecar_mode=self.sidecars is not None,
            )
            result.rolling_out = result.rolling_out or view.rolling_out
            if status_differs(status, previous):
                self.kube.patch_route_status(route.namespace, route.name, status)
                written += 1
            result.events.extend((_event_ref(body), change) for change in changes)
        self._post_events(result.events, now)
        clock.lap("statuses")
        # A pass that published says where its time went (seconds, with thousands of routes).
        logger.log(
            logging.INFO if result.published else logging.DEBUG,
            "pass over %d routes (%d statuses written, %d Events): %s",
            len(pairs),
            written,
            len(result.events),
            clock,
        )
        if self.keys is not None:
            self.keys.report(keys, now)
        return result

    def _sidecars(
        self, routes: list[ModelRoute], secrets: SecretLookup, result: PassResult, clock: _Clock
    ) -> SidecarPass:
        """Sidecar mode's part of the pass (nothing without it); widens what wakes the loop."""
        if self.sidecars is None:
            return SidecarPass()
        sidecars = self.sidecars.reconcile(Inputs(routes, secrets, self.base.config if self.base else None))
        self.referenced = self.referenced | sidecars.extra_secrets
        result.rolling_out = result.rolling_out or sidecars.rolling_out
        result.incomplete = sidecars.failed
        clock.lap("sidecars")
        return sidecars

    def _render(self, routes: list[ModelRoute], secrets: SecretLookup, generation: int, keys: KeyRound) -> Rendered:
        """Render with the current base (refreshed by the caller) and the servable ModelGateKeys.

        A reloaded base that validates alone but not with the routes (nothing to blame on a
        route) is refused like an invalid file: the previous base renders instead.
        """
        base = self.base
        while True:  # at most twice: reject_current() goes back once, then returns False
            try:
                rendered = render(
                    routes,
                    secrets,
                    keys.apply(base.config if base is not None else None),
                    gateway=self.settings.gateway_name,
                    generation=generation,
                    cache=self._built,
                    service_namespaces=self.settings.service_namespaces,
                )
            except BaseConfigError as exc:
                if base is not None and base.reject_current(str(exc)):
                    continue
                raise
            if base is not None:
                base.confirm()
            return rendered

    def _render_and_plan(
        self,
        routes: list[ModelRoute],
        secrets: SecretLookup,
        published: Published,
        inputs: tuple[str, ...],
        keys: KeyRound,
    ) -> Planned:
        """Render and plan, or reuse the last result when nothing it depends on changed.

        A result is reused for the document it describes; one carrying a generation that is no
        longer next (another replica published meanwhile) is rendered again.
        """
        base = self.base
        if base is not None:
            base.refresh()
        keys.apply(base.config if base is not None else None)  # each key's verdict, for its status
        same = (base.config,) if base is not None else ()
        found = self._planned.lookup(inputs, same)
        if found is not None and (
            found[0].checksum == published.checksum or found[0].config.metadata.generation == published.generation + 1
        ):
            return found
        rendered = self._render(routes, secrets, published.generation + 1, keys)
        try:
            planned: Planned = (rendered, plan(rendered, self.settings), None)
        except TooLarge as exc:
            planned = (rendered, None, Oversize(size=exc.size, why=str(exc), route_bytes=route_sizes(exc.sizes)))
        return self._planned.store(inputs, planned, (base.config,) if base is not None else ())

    def _publish(self, rendered: Rendered, layout: Layout, published: Published) -> bool:
        """Write what changed, keys first and the index last; True if the index was written."""
        if not self.committer.write(layout, published):
            return False
        if rendered.checksum != published.checksum:
            logger.info(
                "published config %s (generation %d, %d models, %d bytes in %d shards)",
                rendered.checksum,
                published.generation + 1,
                len(rendered.config.spec.models),
                layout.size,
                len(layout.index.shards),
            )
        return True

    def _served(self, checksum: str, pod_checksums: list[str | None]) -> bool:
        """Every gateway pod serves ``checksum`` (or none was found), or the rollout deadline
        passed since this replica saw it published: a stuck pod must not keep unused keys and
        objects forever, and one that restarts loads the current set anyway."""
        now = time.monotonic()
        first = self.first_seen.setdefault(checksum, now)
        if len(self.first_seen) > 64:  # bounded: only recent checksums matter
            self.first_seen = {checksum: first}
        if all(c == checksum for c in pod_checksums):
            return True
        return now - first >= self.settings.rollout_deadline_seconds

    def _note_refusal(self, checksum: str, refused: Oversize | None) -> None:
        """Log a refused document once (at error level) and the recovery once.

        Not every pass: the condition and Event carry the state; a resync every 30 s would
        repeat the same line without news.
        """
        if refused is not None:
            if checksum != self.refused:
                logger.error(
                    "config %s not published, the gateways keep the last published one: %s", checksum, refused.summary()
                )
            self.refused = checksum
        elif self.refused is not None:
            logger.info("the rendered config fits the size budget again: publishing resumed")
            self.refused = None

    def _post_events(self, events: list[tuple[dict[str, Any], ConditionChange]], now: str) -> None:
        for ref, change in events:
            try:
                self.kube.post_event(
                    ref, change.event_type, change.reason, f"{change.type}={change.status}: {change.message}", now
                )
            except KubeApiError as exc:  # an Event is a courtesy; the status already says it
                logger.warning("could not post an Event: %s", exc)


def _event_ref(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if meta.get(k)},
    }


async def run_loop(reconciler: Reconciler, wakeup: asyncio.Event) -> None:
    """Forever: wait for a trigger, debounce, run a pass in a thread.

    Only a failed pass schedules another one by itself, after a delay that doubles per consecutive
    failure (``retry_seconds``, 5 s, up to ``retry_max_seconds``, 60 s), so an API that keeps
    failing costs one attempt and one warning line per delay, not a spin. A failure talking to the
    API (:class:`KubeApiError`, an unreachable API server included) is expected and logged as one
    line; only a surprise gets a traceback. A refused (oversized) document is a finished pass:
    retrying could not change the outcome, only a change or the resync can. A pass that did
    everything but some sidecar namespace's part (:attr:`PassResult.incomplete`) is retried the
    same way, one namespace's trouble delaying nobody else's.
    """
    s = reconciler.settings
    loop = asyncio.get_running_loop()
    rollout_until = 0.0
    backoff = Backoff(s.retry_seconds, s.retry_max_seconds)
    while True:  # one pass per trigger (or per resync period); ends when the task is cancelled
        with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
            async with asyncio.timeout(s.resync_seconds):
                await wakeup.wait()
        started = loop.time()
        while True:  # debounce: wait for quiet, but never longer than the cap
            wakeup.clear()
            remaining = min(s.debounce_seconds, started + s.debounce_max_seconds - loop.time())
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    await wakeup.wait()
            except TimeoutError:
                break
        wakeup.clear()
        try:
            result = await asyncio.to_thread(reconciler.reconcile)
        except KubeApiError as exc:
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
        if result.incomplete:  # the rest of the pass is done: retry only what failed, with the same backoff
            delay = backoff.failed()
            logger.warning("reconcile incomplete, retrying in %.3gs: %s", delay, "; ".join(result.incomplete))
            loop.call_later(delay, wakeup.set)
        elif failures := backoff.succeeded():
            logger.info("reconcile succeeded again after %d failed attempt%s", failures, "" if failures == 1 else "s")
        if result.published:
            rollout_until = loop.time() + s.rollout_deadline_seconds
        if result.rolling_out and loop.time() < rollout_until:
            loop.call_later(s.rollout_poll_seconds, wakeup.set)
