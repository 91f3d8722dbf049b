"""A 100 MB JSON answer passes through whole, signed, without being held or stalling the loop.

Before, the gateway joined the answer's pieces, parsed all of it to find its id and usage, and
copied it again to replace the id: +490 MiB of RSS and one 835 ms stretch during which the event
loop served nobody else. Now an answer is held at most once and big ones are streamed.

Measured in-process: the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) over the
RSS when the request starts, and the longest CPU burst of the event loop's thread between two
turns of a 1 ms probe task: CPU time, not wall time, so that other processes on a busy machine
do not count, and everything the loop ran (gateway, upstream, client) is included.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path

import httpx2
import orjson
import pytest

from gateway_harness import GatewayHarness, config_doc, deployment, gateway_id
from misbehaving_upstream import Fault, MisbehavingUpstream, response_object
from raw_http_server import eventually

ANSWER_BYTES = 100 * 1000 * 1000
MAX_RSS_GROWTH = 48 * 1024 * 1024  # far below the answer's size: it is not held whole
MAX_BURST_SECONDS = 0.05


def _rss(field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak RSS (VmHWM) becomes the current RSS


class LoopBursts:
    """The most CPU time the loop's thread spent between two turns of a 1 ms sleeper."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        last = time.thread_time()
        while True:
            await asyncio.sleep(0.001)
            now = time.thread_time()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> LoopBursts:
        self._task = asyncio.get_running_loop().create_task(self._probe())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _big_answer(rid: str) -> bytes:
    text = "All work and no play makes Jack a dull boy. " * (ANSWER_BYTES // 44)
    return orjson.dumps(response_object(rid, "up-a", text))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
async def test_a_100_mb_answer_passes_through_whole_and_signed(tmp_path: Path) -> None:
    rid = "resp_big0001"
    body = _big_answer(rid)
    old_token = orjson.dumps(rid)
    new_token = orjson.dumps(gateway_id(rid, "a"))
    start = body.index(old_token)
    expected = hashlib.sha256(body[:start] + new_token)
    expected.update(memoryview(body)[start + len(old_token):])
    expected_length = len(body) - len(old_token) + len(new_token)
    async with MisbehavingUpstream(answer_body=body) as upstream:
        harness = GatewayHarness(tmp_path, config_doc([deployment("a", upstream.url())],
                                                      [{"name": "m", "targets": [{"deployment": "a"}]}]))
        await harness.start()
        client = harness.client()
        try:
            _reset_peak_rss()
            before = _rss("VmRSS")
            got, length = hashlib.sha256(), 0
            with LoopBursts() as bursts:
                async with client.responses.with_streaming_response.create(model="m", input="hi") as raw:
                    announced = raw.headers["content-length"]
                    async for piece in raw.iter_bytes():
                        got.update(piece)
                        length += len(piece)
            growth = _rss("VmHWM") - before
            await eventually(lambda: len(harness.log_lines()) == 1, timeout=5)
            line = harness.log_lines()[0]
        finally:
            await client.close()
            await harness.close()
    assert growth < MAX_RSS_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MiB for a 100 MB answer"
    assert bursts.longest < MAX_BURST_SECONDS, f"the loop was busy for {bursts.longest * 1000:.0f} ms at once"
    assert announced == str(expected_length)
    assert length == expected_length
    assert got.hexdigest() == expected.hexdigest()
    assert line["status"] == 200
    assert line["response_id"] == orjson.loads(new_token)
    assert not line["usage_estimated"]
    assert line["input_tokens"] == 12 and line["output_tokens"] == 7  # the upstream's usage, found in the tail


LARGE = 3 * 1000 * 1000  # past the size up to which answers are read whole, so these stream


def _large_answer(rid: str = "resp_large") -> bytes:
    return orjson.dumps(response_object(rid, "up-a", "Lorem ipsum dolor sit amet. " * (LARGE // 28)))


async def _gateway(tmp: Path, upstream: MisbehavingUpstream) -> GatewayHarness:
    harness = GatewayHarness(tmp, config_doc([deployment("a", upstream.url())],
                                             [{"name": "m", "targets": [{"deployment": "a"}]}]))
    await harness.start()
    return harness


@pytest.mark.parametrize("how", ["shorter-than-its-content-length", "complete-but-not-json"])
async def test_a_large_answer_broken_on_the_way_never_looks_complete(tmp_path: Path, how: str) -> None:
    """Once a streamed answer's start went out a 502 is impossible; the client's connection is cut
    instead, so no client can take the part it got for the whole answer."""
    body = _large_answer()
    async with MisbehavingUpstream(answer_body=body if how != "complete-but-not-json" else body[:-25]) as upstream:
        if how == "shorter-than-its-content-length":
            upstream.fault = Fault.SHORT_BODY
        harness = await _gateway(tmp_path, upstream)
        client = harness.client()
        try:
            with pytest.raises(httpx2.RemoteProtocolError, match="without sending complete message body"):
                async with client.responses.with_streaming_response.create(model="m", input="hi") as raw:
                    assert raw.status_code == 200
                    await raw.read()
            await eventually(lambda: len(harness.log_lines()) == 1)
            line = harness.log_lines()[0]
            assert (line["status"], line["error_type"]) == (502, "upstream_stream_error")
        finally:
            await client.close()
            await harness.close()


async def test_a_large_answer_whose_id_comes_last_is_held_then_signed(tmp_path: Path) -> None:
    answer = orjson.loads(_large_answer())
    rid = answer.pop("id")
    body = orjson.dumps({**answer, "id": rid})
    async with MisbehavingUpstream(answer_body=body) as upstream:
        harness = await _gateway(tmp_path, upstream)
        client = harness.client()
        try:
            async with client.responses.with_streaming_response.create(model="m", input="hi") as raw:
                got = await raw.read()
        finally:
            await client.close()
            await harness.close()
    signed = gateway_id(rid, "a").encode()
    assert got == body[:-len(rid) - 3] + b'"' + signed + b'"}'


async def test_a_client_leaving_a_large_answer_closes_the_upstream_connection(tmp_path: Path) -> None:
    async with MisbehavingUpstream(answer_body=_big_answer("resp_leave")) as upstream:
        harness = await _gateway(tmp_path, upstream)
        client = harness.client()
        try:
            async with client.responses.with_streaming_response.create(model="m", input="hi") as raw:
                async for _ in raw.iter_bytes():
                    break  # leaving the block closes the connection
            await asyncio.wait_for(upstream.cut.wait(), 5)
            await eventually(lambda: len(harness.log_lines()) == 1)
            line = harness.log_lines()[0]
            assert line["client_disconnected"] and line["status"] == 499
        finally:
            await client.close()
            await harness.close()
