"""The floor: a bare aiohttp pass-through proxy that only forwards bytes.

No parsing, no auth, no routing: the request body is read and posted to the upstream on one
shared ``ClientSession`` (keep-alive connection pool), the answer's status, content type and body
come back; event streams are relayed chunk by chunk as they arrive. Whatever the gateway costs on
top of this is the price of its features.

    python bench/floor_proxy.py --port 18002 --upstream http://127.0.0.1:18001 --cpu 0
"""

from __future__ import annotations

import argparse
import asyncio
import os

import aiohttp
from aiohttp import web

FORWARDED = ("Authorization", "Content-Type", "Accept")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    body = await request.read()
    headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
    async with session.request(
        request.method, request.app[UPSTREAM] + request.path_qs, data=body, headers=headers
    ) as upstream:
        content_type = upstream.headers.get("Content-Type", "application/octet-stream")
        if not content_type.startswith("text/event-stream"):
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                headers={"Content-Type": content_type},
            )
        out = web.StreamResponse(status=upstream.status, headers={"Content-Type": content_type})
        await out.prepare(request)
        async for chunk in upstream.content.iter_any():
            await out.write(chunk)
        await out.write_eof()
        return out


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _session_ctx(app: web.Application) -> object:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
    app[SESSION] = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120),
    )
    yield
    await app[SESSION].close()


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(host: str, port: int, upstream: str, reuse_port: bool) -> None:
    runner = web.AppRunner(make_app(upstream), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_port=reuse_port)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18002)
    parser.add_argument("--upstream", default="http://127.0.0.1:18001")
    parser.add_argument("--cpu", type=int, default=None, help="pin to one core")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    children: list[int] = []
    for _ in range(args.workers - 1):
        pid = os.fork()  # before any event loop exists
        if pid == 0:
            _run(args)
            os._exit(0)
        children.append(pid)
    try:
        _run(args)
    finally:
        for pid in children:
            os.waitpid(pid, 0)


def _run(args: argparse.Namespace) -> None:
    coro = serve(args.host, args.port, args.upstream, reuse_port=args.workers > 1)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    try:
        uvloop.run(coro)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
