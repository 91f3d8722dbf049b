"""WebSocket mode against HTTP: a 20-turn tool loop through the gateway, and straight to the upstream.

A fake upstream answers every turn at once with a function call (the agent loop of a coding
client: call a tool, send its output back, repeat), over HTTP (SSE) and over WebSocket mode. The
official SDK drives each loop, one turn after the other, and the medians over ``--loops`` loops
are reported per path:

- ``http``: ``POST /v1/responses`` streamed, chained with ``previous_response_id`` (store on), each
  turn a request on the SDK's keep-alive connection;
- ``ws -> ws upstream``: one client socket, the gateway holding one upstream socket for it;
- ``ws -> http upstream``: one client socket, each turn one HTTP call upstream with the context the
  gateway remembers for ``store: false``;
- the same loops straight to the fake upstream (``direct``), so the gateway's added latency per turn is
  the difference.

    python bench/websocket_loop.py [--turns 20] [--loops 15] [--docs docs/performance.md]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
import targets

UPSTREAM_PORT, GATEWAY_PORT, METRICS_PORT = 18011, 18013, 18014
TOOLS = [{"type": "function", "name": "run", "parameters": {"type": "object", "properties": {}}}]
_ids = itertools.count(1)


def _events(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One turn's events: created, a function call item (arguments in two deltas), completed with usage."""
    rid = f"resp_{next(_ids):08d}"
    call = {"type": "function_call", "id": f"fc_{rid}", "call_id": f"call_{rid}", "name": "run", "arguments": "{}"}
    response = {
        "id": rid,
        "object": "response",
        "status": "in_progress",
        "model": body.get("model"),
        "output": [],
        "previous_response_id": body.get("previous_response_id"),
        "usage": None,
    }
    done = {
        **response,
        "status": "completed",
        "output": [{**call, "status": "completed"}],
        "usage": {"input_tokens": 50, "output_tokens": 5, "total_tokens": 55},
    }
    events = [
        {"type": "response.created", "response": response},
        {"type": "response.output_item.added", "output_index": 0, "item": {**call, "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "item_id": call["id"], "output_index": 0, "delta": "{"},
        {"type": "response.function_call_arguments.delta", "item_id": call["id"], "output_index": 0, "delta": "}"},
        {"type": "response.output_item.done", "output_index": 0, "item": {**call, "status": "completed"}},
        {"type": "response.completed", "response": done},
    ]
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


def serve_upstream(port: int) -> None:
    """The fake upstream: POST /v1/responses (SSE) and GET /v1/responses (WebSocket mode)."""
    from aiohttp import web

    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in _events(body):
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        return resp

    async def socket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            for event in _events(json.loads(msg.data)):
                await ws.send_str(json.dumps(event))
        return ws

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/responses", create)
    app.router.add_get("/v1/responses", socket)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def _config(workdir: Path) -> Path:
    base = f"http://127.0.0.1:{UPSTREAM_PORT}/v1"
    doc = {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": [
                {"name": "ws-up", "baseUrl": base, "model": "m", "websocket": True},
                {"name": "http-up", "baseUrl": base, "model": "m"},
            ],
            "models": [
                {"name": "loop-ws", "targets": [{"deployment": "ws-up"}]},
                {"name": "loop-http", "targets": [{"deployment": "http-up"}]},
            ],
            "auth": {"keys": [{"name": "bench", "sha256": hashlib.sha256(targets.API_KEY.encode()).hexdigest()}]},
            "observability": {"requestLog": {"enabled": True, "path": str(workdir / "requests.log")}},
        },
    }
    path = workdir / "config.json"
    path.write_text(json.dumps(doc))
    return path


async def _http_loop(client: Any, model: str, turns: int) -> list[float]:
    times, previous, items = [], None, "start"
    for _ in range(turns):
        t0 = time.perf_counter()
        stream = (
            await client.responses.create(
                model=model, input=items, tools=TOOLS, stream=True, previous_response_id=previous
            )
            if previous
            else await client.responses.create(model=model, input=items, tools=TOOLS, stream=True)
        )
        final = None
        async for event in stream:
            if event.type == "response.completed":
                final = event.response
        times.append(time.perf_counter() - t0)
        assert final is not None
        previous = final.id
        items = [{"type": "function_call_output", "call_id": final.output[0].call_id, "output": "ok"}]
    return times


async def _ws_loop(client: Any, model: str, turns: int) -> list[float]:
    times, previous, items = [], None, "start"
    async with client.responses.connect() as conn:
        for _ in range(turns):
            t0 = time.perf_counter()
            if previous:
                await conn.response.create(
                    model=model, input=items, tools=TOOLS, store=False, previous_response_id=previous
                )
            else:
                await conn.response.create(model=model, input=items, tools=TOOLS, store=False)
            final = None
            async for event in conn:
                if event.type == "error":
                    raise RuntimeError(f"error event: {event}")
                if event.type == "response.completed":
                    final = event.response
                    break
            times.append(time.perf_counter() - t0)
            assert final is not None
            previous = final.id
            items = [{"type": "function_call_output", "call_id": final.output[0].call_id, "output": "ok"}]
    return times


async def _measure(turns: int, loops: int) -> dict[str, dict[str, float]]:
    from openai import AsyncOpenAI

    gateway = AsyncOpenAI(
        base_url=f"http://127.0.0.1:{GATEWAY_PORT}/v1", api_key=targets.API_KEY, max_retries=0, timeout=30
    )
    direct = AsyncOpenAI(base_url=f"http://127.0.0.1:{UPSTREAM_PORT}/v1", api_key="unused", max_retries=0, timeout=30)
    paths = {
        "http (gateway)": lambda: _http_loop(gateway, "loop-http", turns),
        "ws -> ws upstream (gateway)": lambda: _ws_loop(gateway, "loop-ws", turns),
        "ws -> http upstream (gateway)": lambda: _ws_loop(gateway, "loop-http", turns),
        "http (direct)": lambda: _http_loop(direct, "m", turns),
        "ws (direct)": lambda: _ws_loop(direct, "m", turns),
    }
    samples: dict[str, list[list[float]]] = {name: [] for name in paths}
    for run in paths.values():  # warm-up: connections, imports, the tokenizer's first use
        await run()
    for _ in range(loops):  # interleaved, so drift hits every path alike
        for name, run in paths.items():
            samples[name].append(await run())
    await gateway.close()
    await direct.close()
    out = {}
    for name, runs in samples.items():
        out[name] = {
            "loop_ms": statistics.median(sum(run) for run in runs) * 1000,
            "turn_p50_ms": statistics.median(t for run in runs for t in run) * 1000,
            "first_turn_ms": statistics.median(run[0] for run in runs) * 1000,
        }
    return out


def _report(results: dict[str, dict[str, float]], turns: int, loops: int) -> str:
    lines = [
        f"{turns}-turn tool loop, medians over {loops} loops (official SDK; fake upstream answering at once):",
        "",
        "| path | loop (ms) | per turn p50 (ms) | first turn (ms) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['loop_ms']:.1f} | {r['turn_p50_ms']:.2f} | {r['first_turn_ms']:.2f} |")
    http_added = results["http (gateway)"]["turn_p50_ms"] - results["http (direct)"]["turn_p50_ms"]
    ws_added = results["ws -> ws upstream (gateway)"]["turn_p50_ms"] - results["ws (direct)"]["turn_p50_ms"]
    lines += [
        "",
        f"Added by the gateway per turn (p50, gateway - direct): HTTP {http_added:.2f} ms, "
        f"WebSocket {ws_added:.2f} ms.",
        f"Loop through the gateway, WebSocket (ws upstream) against HTTP: "
        f"{results['ws -> ws upstream (gateway)']['loop_ms'] / results['http (gateway)']['loop_ms']:.2f}x the time.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--loops", type=int, default=15)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    exe = targets.gateway_executable()
    if exe is None:
        sys.exit("modelgate-gateway is not installed in this venv")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream = procs.start(
            "upstream",
            [targets.PYTHON, __file__, "--serve-upstream", str(UPSTREAM_PORT)],
            cpus={targets.LOAD_CPU},
            ready_port=UPSTREAM_PORT,
            ready_path="/healthz",
            log=workdir / "upstream.log",
        )
        cmd = [exe, "--config", str(_config(workdir)), "--host", "127.0.0.1", "--port", str(GATEWAY_PORT)]
        cmd += ["--metrics-port", str(METRICS_PORT)]
        gateway = procs.start(
            "gateway",
            cmd,
            cpus={targets.PROXY_CPU},
            ready_port=GATEWAY_PORT,
            ready_path="/readyz",
            log=workdir / "gateway.log",
        )
        try:
            results = asyncio.run(_measure(args.turns, args.loops))
        finally:
            gateway.stop()
            upstream.stop()
    text = _report(results, args.turns, args.loops)
    print(text)
    out = Path(__file__).resolve().parent / "results" / "websocket_loop.json"
    out.write_text(json.dumps({"turns": args.turns, "loops": args.loops, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
