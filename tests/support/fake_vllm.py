"""A fake vLLM-like server: the Responses API with a process-local response store, and /metrics.

Like vLLM, each server keeps its stored responses in its own memory: a ``previous_response_id``
or retrieve sent to another server of the same pool gets a 404. ``/metrics`` serves vLLM's gauges
(``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc``):
running is the requests in progress plus ``extra_running``; waiting and KV-cache usage are set by
the test. ``metrics_status`` other than 200 makes the metrics endpoint fail, ``metrics_hang`` hang.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from fake_responses_upstream import FakeResponsesUpstream


class FakeVllmServer(FakeResponsesUpstream):
    def __init__(self, name: str) -> None:
        super().__init__(name, text=f"Answer from {name}.")
        self.waiting = 0.0
        self.extra_running = 0.0
        self.kv_cache = 0.0
        self.metrics_status = 200
        self.metrics_hang = False
        """/metrics never answers (until the reader gives up and disconnects)."""
        self.in_flight = 0
        self.metrics_reads = 0
        self.metrics_read = asyncio.Event()
        """Set on every read of /metrics (tests clear it and wait for the next)."""

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self._metrics)

    @property
    def metrics_url(self) -> str:
        return self.base_url.removesuffix("/v1") + "/metrics"

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read() or b"{}")
        previous = body.get("previous_response_id") if isinstance(body, dict) else None
        if previous is not None and previous not in self.stored:  # vLLM: the store is this process's
            await self._note(request)
            message = f"Response with id '{previous}' not found."
            error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=404)
        self.in_flight += 1
        try:
            return await super()._create(request)
        finally:
            self.in_flight -= 1

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.metrics_reads += 1
        self.metrics_read.set()
        if self.metrics_hang:
            await asyncio.Event().wait()
        if self.metrics_status != 200:
            return web.Response(status=self.metrics_status, text="metrics unavailable")
        labels = '{model_name="up-pool"}'
        text = (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{labels} {float(self.in_flight + self.extra_running)}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {float(self.waiting)}\n"
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f"vllm:kv_cache_usage_perc{labels} {float(self.kv_cache)}\n"
        )
        return web.Response(text=text, content_type="text/plain")
