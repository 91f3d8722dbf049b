"""Reference cycles a request path leaves: run requests with the cyclic collector off, then see what
a collection finds of the gateway, aiohttp's server or the upstream client (see
tests/robustness/test_no_reference_cycles.py for why that matters)."""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop


def from_request_path(obj: object) -> bool:
    """Whether a collected object belongs to the gateway, aiohttp's server or the upstream client."""
    if isinstance(obj, types.FrameType):
        name = obj.f_code.co_filename
        return "modelgate_gateway" in name or "/aiohttp/web" in name or "/aiohttp/http_" in name
    if isinstance(obj, types.TracebackType):
        return from_request_path(obj.tb_frame)
    if isinstance(obj, types.CoroutineType):
        return from_request_path(obj.cr_frame) if obj.cr_frame is not None else (
            "modelgate_gateway" in obj.cr_code.co_filename or "/aiohttp/web" in obj.cr_code.co_filename)
    module = type(obj).__module__ or ""
    return module.startswith(("modelgate_gateway", "aiohttp.web", "httptools", "uvloop", "multidict"))


async def left_in_cycles(requests: Callable[[], Awaitable[None]]) -> list[object]:
    """What a collection finds of the request path after ``requests`` ran with the collector off."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await requests()
        for _ in range(5):  # connection_lost and other callbacks still queued
            await asyncio.sleep(0)
        gc.collect()
        return [obj for obj in gc.garbage if from_request_path(obj)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def run_on_uvloop(factory: Callable[[], Coroutine[Any, Any, list[object]]]) -> list[object]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(factory())
