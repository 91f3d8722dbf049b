"""``modelgate-gateway``: serve, print the config schema, or check a config file.

Only this module touches sockets, signals, processes and the event loop policy. On SIGTERM the
gateway stops accepting, lets in-flight requests and streams finish for up to the grace period,
then cancels what is left and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

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


def _build_source(settings: GatewaySettings) -> Any:
    from .sources.files import FileSource
    from .sources.preferring import PreferringSource

    file_source = None
    if settings.config_path:
        file_source = FileSource(settings.config_path, settings.secrets_dir, settings.reload_interval_seconds)
    if settings.kube_configmap:
        from .sources.kube import KubeSource

        kube = KubeSource.in_cluster(configmap=settings.kube_configmap, key=settings.kube_config_key,
                                     secret=settings.kube_secret)
        return PreferringSource(kube, file_source) if file_source is not None else kube
    if file_source is None:
        raise SystemExit("no config: pass --config PATH (or MODELGATE_CONFIG) or --kube-configmap")
    return file_source


async def _start_metrics(settings: GatewaySettings, registry: Any, worker: int, state: Any) -> web.AppRunner | None:
    if not settings.metrics_port:
        return None
    from .metricsapp import metrics_app

    runner = web.AppRunner(metrics_app(registry, state), access_log=None)
    await runner.setup()
    # With several workers each serves its own metrics on consecutive ports.
    site = web.TCPSite(runner, settings.metrics_host or settings.host, settings.metrics_port + worker)
    await site.start()
    return runner


async def serve(settings: GatewaySettings, worker: int = 0) -> int:
    from prometheus_client import CollectorRegistry

    from .app import RELOADER, make_app, make_state
    from .observing import GatewayObserver

    registry = CollectorRegistry()
    observer = GatewayObserver(registry)
    state = make_state(observer)
    shared_key = os.environ.get("MODELGATE_EPHEMERAL_SIGNING_KEY")  # set by the workers' parent
    if shared_key:
        state.ephemeral_signing_key = bytes.fromhex(shared_key)
    app = make_app(state, _build_source(settings), observer, settings.reload_interval_seconds)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                           shutdown_timeout=settings.shutdown_grace_seconds)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024,
                       reuse_port=settings.workers > 1 or None)
    await site.start()
    metrics_runner = await _start_metrics(settings, registry, worker, state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on http://%s:%d (worker %d)", settings.host, settings.port, worker)
    reloader = app[RELOADER]
    waiter = asyncio.create_task(reloader.loaded.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if reloader.loaded.is_set():
        log.info("ready: serving config %s", state.runtime.checksum if state.runtime else "?")
        _settle_heap()
    await stopper
    waiter.cancel()
    log.info("SIGTERM: draining in-flight requests for up to %.0fs", settings.shutdown_grace_seconds)
    state.draining = True
    await runner.cleanup()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await observer.close()
    log.info("stopped")
    return 0


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


def _worker_main(settings: GatewaySettings, worker: int) -> None:
    _configure_logging(settings.log_level)
    sys.exit(_run(lambda: serve(settings, worker)))


def _serve_workers(settings: GatewaySettings) -> int:
    """Parent of N workers sharing the port via SO_REUSEPORT; forwards SIGTERM and waits."""
    ctx = multiprocessing.get_context("spawn")
    # Workers must sign response ids alike even without a configured key.
    os.environ.setdefault("MODELGATE_EPHEMERAL_SIGNING_KEY", os.urandom(32).hex())
    procs = [ctx.Process(target=_worker_main, args=(settings, i), daemon=False) for i in range(settings.workers)]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return max((proc.exitcode or 0) for proc in procs)


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    if settings.workers > 1:
        return _serve_workers(settings)
    return _run(lambda: serve(settings))


def entrypoint() -> None:
    sys.exit(main())
