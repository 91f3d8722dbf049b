"""``modelgate-gateway``: serve, print the config schema, or check a config file.

Only this module touches sockets, signals, processes and the event loop policy. On SIGTERM (or
SIGINT) the gateway stops accepting, lets in-flight requests and streams finish for up to the
grace period, cuts what is left (:mod:`.server.draining`) and exits 0 within the grace period plus
``SHUTDOWN_OVERRUN_SECONDS``. SIGHUP re-reads the config at once. Client connections are bounded
by :mod:`.server.clientconn`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import resource
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from .server.clientconn import ClientLimits, ConnectionGuard, GuardedSite
from .server.draining import CLEANUP_TIMEOUT_SECONDS, drain, stopper
from .settings import GatewaySettings, add_serve_arguments, settings_from_args

log = logging.getLogger("modelgate.gateway")
_GC_GEN0_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def _check(path: str) -> int:
    from .config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"{exc.source}: {error}", file=sys.stderr)
        return 1
    spec = config.spec
    print(f"{path}: valid ({len(spec.models)} models, {len(spec.deployments)} deployments)")
    return 0


def _kube_source(settings: GatewaySettings) -> Any:
    """The ConfigMap/Secret watch: in a pod through its service account, elsewhere (or with an
    explicit --kubeconfig) through a kubeconfig, as kubectl would connect."""
    from .sources.kube import KubeSource
    from .sources.kubeconfig import KubeconfigError, kubeconfig_paths, load_kubeconfig

    configmap, key, secret = settings.kube_configmap or "", settings.kube_config_key, settings.kube_secret
    if not settings.kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KubeSource.in_cluster(configmap=configmap, key=key, secret=secret)
    paths = kubeconfig_paths(settings.kubeconfig)
    if paths is None:
        raise SystemExit("--kube-configmap: not in a pod and no kubeconfig; pass --kubeconfig (or set KUBECONFIG)")
    try:
        connection = load_kubeconfig(paths, settings.kube_context)
    except KubeconfigError as exc:
        raise SystemExit(f"--kubeconfig: {exc}") from None
    log.info(
        "following %s on %s (kubeconfig context %s)", settings.kube_configmap, connection.server, connection.context
    )
    return KubeSource(connection.server, connection.token, configmap, key, secret, ssl_context=connection.ssl_context)


def _endpoint_slices(settings: GatewaySettings, source: Any) -> Any:
    """The EndpointSlice follower of ``serviceRef`` pools: on the API the config comes from, else
    in a pod through its service account, else through an explicit --kubeconfig; None without any."""
    from .sources.endpointslices import EndpointSliceFollower
    from .sources.kube import SERVICE_ACCOUNT_DIR, KubeSource, in_cluster_connection
    from .sources.kubeconfig import KubeconfigError, kubeconfig_paths, load_kubeconfig

    kube = getattr(source, "primary", source)
    if isinstance(kube, KubeSource):
        return EndpointSliceFollower(kube.server, kube.token, ssl_context=kube.ssl_context)
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").is_file()
    if not settings.kubeconfig and in_pod:  # a pod without a mounted token follows nothing
        server, token, context = in_cluster_connection()
        return EndpointSliceFollower(server, token, ssl_context=context)
    if not settings.kubeconfig:
        return None
    try:
        connection = load_kubeconfig(kubeconfig_paths(settings.kubeconfig) or [], settings.kube_context)
    except KubeconfigError as exc:
        raise SystemExit(f"--kubeconfig: {exc}") from None
    return EndpointSliceFollower(connection.server, connection.token, ssl_context=connection.ssl_context)


def _build_source(settings: GatewaySettings) -> Any:
    from .sources.files import FileSource
    from .sources.preferring import PreferringSource

    file_source = None
    if settings.config_path:
        file_source = FileSource(settings.config_path, settings.secrets_dir, settings.reload_interval_seconds)
    if settings.kube_configmap:
        kube = _kube_source(settings)
        return PreferringSource(kube, file_source) if file_source is not None else kube
    if file_source is None:
        raise SystemExit("no config: pass --config PATH (or MODELGATE_CONFIG) or --kube-configmap")
    return file_source


_METRICS_MAX_CONNECTIONS = 32  # scrapers hold one connection each


def client_limits(settings: GatewaySettings) -> ClientLimits:
    """The configured limits, with the connection cap kept below the open-file limit.

    The soft limit is raised to the hard one first (as Go and nginx do); half of it stays for
    upstream connections, the config and log files, so accepting never fails for lack of one.
    """
    cap = settings.max_client_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft // 2 < cap:
        log.warning(
            "open-file limit is %d: serving at most %d client connections instead of %d", soft, max(1, soft // 2), cap
        )
        cap = max(1, soft // 2)
    return ClientLimits(
        header_timeout=settings.client_header_timeout_seconds,
        body_timeout=settings.client_body_timeout_seconds,
        idle_timeout=settings.client_idle_timeout_seconds,
        max_connections=cap,
    )


async def _start_metrics(
    settings: GatewaySettings, registry: Any, worker: int, limits: ClientLimits, state: Any
) -> web.AppRunner | None:
    if not settings.metrics_port:
        return None
    from .app import metrics_port_app

    runner = web.AppRunner(metrics_port_app(registry, state), access_log=None, shutdown_timeout=CLEANUP_TIMEOUT_SECONDS)
    await runner.setup()
    guard = ConnectionGuard(
        ClientLimits(
            limits.header_timeout,
            limits.body_timeout,
            limits.idle_timeout,
            min(limits.max_connections, _METRICS_MAX_CONNECTIONS),
        )
    )
    # With several workers each serves its own metrics on consecutive ports.
    site = GuardedSite(runner, guard, settings.metrics_host or settings.host, settings.metrics_port + worker)
    await site.start()
    return runner


async def serve(settings: GatewaySettings, worker: int = 0) -> int:
    from prometheus_client import CollectorRegistry

    from .app import RELOADER, make_app, make_state
    from .observability.observer import GatewayObserver

    registry = CollectorRegistry()
    observer = GatewayObserver(registry)
    state = make_state(observer, registry)
    shared_key = os.environ.get("MODELGATE_EPHEMERAL_SIGNING_KEY")  # set by the workers' parent
    if shared_key:
        state.ephemeral_signing_key = bytes.fromhex(shared_key)
    source = _build_source(settings)
    app = make_app(
        state, source, observer, settings.reload_interval_seconds, endpoint_slices=_endpoint_slices(settings, source)
    )
    reloader = app[RELOADER]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_now, reloader)
    # aiohttp's own shutdown wait only mops up: draining.drain has waited for the requests.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=CLEANUP_TIMEOUT_SECONDS)
    await runner.setup()
    limits = client_limits(settings)
    guard = ConnectionGuard(limits, observer.metrics.client_connections_closed)
    observer.metrics.client_connections.set_function(lambda: len(guard.connections))
    site = GuardedSite(runner, guard, settings.host, settings.port, reuse_port=settings.workers > 1)
    await site.start()
    metrics_runner = await _start_metrics(settings, registry, worker, limits, state)
    log.info("listening on http://%s:%d (worker %d)", settings.host, settings.port, worker)
    waiter = asyncio.create_task(reloader.loaded.wait())
    stopper_task = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper_task}, return_when=asyncio.FIRST_COMPLETED)
    if reloader.loaded.is_set():
        log.info("ready: serving config %s", state.runtime.checksum if state.runtime else "?")
        _settle_heap()
    await stopper_task
    waiter.cancel()
    log.info("SIGTERM: draining in-flight requests for up to %gs", settings.shutdown_grace_seconds)
    state.draining = True
    state.sockets.drain()  # idle WebSockets close now (1001), busy ones once their turns end
    await drain(state.inflight, settings.shutdown_grace_seconds, stopper(runner, guard), runner.cleanup)
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await observer.close()
    log.info("stopped")
    return 0


def _reload_now(reloader: Any) -> None:
    log.info("SIGHUP: re-reading the config now")
    reloader.reload_now()


def _settle_heap() -> None:
    """Keep the garbage collector off the start-up heap and away from request-scoped objects.

    Modules, the config and pydantic's schema objects are ~60k tracked objects that live as long
    as the process: a full collection walks them all (~15 ms, a pause every request in flight
    waits out). ``gc.freeze`` moves them out of the collector's generations. A larger
    first-generation threshold lets a request's short-lived containers die before a young
    collection scans and promotes them (with 700 most live requests get scanned and promoted).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def _run(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro_factory())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_factory())


def _ignore_sighup_until_served() -> None:
    """Until ``serve`` installs its handler, a SIGHUP (default: terminate) must not kill the process."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _worker_main(settings: GatewaySettings, worker: int) -> None:
    _ignore_sighup_until_served()
    _configure_logging(settings.log_level)
    sys.exit(_run(lambda: serve(settings, worker)))


def _serve_workers(settings: GatewaySettings) -> int:
    """Parent of N workers sharing the port via SO_REUSEPORT; forwards SIGTERM, SIGINT and SIGHUP."""
    ctx = multiprocessing.get_context("spawn")
    # Workers must sign response ids alike even without a configured key.
    os.environ.setdefault("MODELGATE_EPHEMERAL_SIGNING_KEY", os.urandom(32).hex())
    procs = [ctx.Process(target=_worker_main, args=(settings, i), daemon=False) for i in range(settings.workers)]

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # before the workers exist: none is lost
        signal.signal(sig, forward)
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return max((proc.exitcode or 0) for proc in procs)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list[0] if args_list and args_list[0] in {"serve", "schema", "check"} else "serve"
    if args_list and args_list[0] == command:
        args_list = args_list[1:]
    if command == "schema":
        from .config.schema import schema_text

        sys.stdout.write(schema_text())
        return 0
    parser = argparse.ArgumentParser(prog=f"modelgate-gateway {command}")
    add_serve_arguments(parser, os.environ)
    args = parser.parse_args(args_list)
    if command == "check":
        if not args.config:
            parser.error("check needs --config PATH")
        return _check(args.config)
    settings = settings_from_args(args)
    _configure_logging(settings.log_level)
    _ignore_sighup_until_served()
    if settings.workers > 1:
        return _serve_workers(settings)
    return _run(lambda: serve(settings))


def entrypoint() -> None:
    sys.exit(main())
