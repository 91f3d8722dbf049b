"""read_body: the whole body whichever way it arrives, without an extra read once the stream is at its end."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from modelgate_gateway.errors import PayloadTooLarge
from modelgate_gateway.handlers.endpoint import read_body


class CountingReader(StreamReader):
    """aiohttp's own stream, counting the reads the handler makes."""

    reads = 0

    async def readany(self) -> bytes:
        self.reads += 1
        return await super().readany()


def _request(length: int | None) -> tuple[web.Request, CountingReader]:
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    protocol.transport = asyncio.Transport()  # connected, as while a client sends its body
    reader = CountingReader(protocol, 2**16, loop=loop)
    headers = {"Content-Length": str(length)} if length is not None else {"Transfer-Encoding": "chunked"}
    return make_mocked_request("POST", "/v1/responses", headers=headers, payload=reader), reader


async def _until_waiting(reader: StreamReader, task: asyncio.Task[bytes]) -> None:
    for _ in range(100):  # bounded: the task parks on the reader's waiter within a few loop turns
        if reader._waiter is not None:
            return
        assert not task.done(), task
        await asyncio.sleep(0)
    raise AssertionError("read_body never waited for more of the body")


async def test_a_body_already_complete_is_read_once() -> None:
    request, reader = _request(13)
    reader.feed_data(b'{"model":"m"}')
    reader.feed_eof()
    assert await read_body(request, 1024) == b'{"model":"m"}'
    assert reader.reads == 1  # no second read for the empty chunk that marks the end


async def test_a_body_in_several_reads_is_read_whole() -> None:
    request, reader = _request(13)
    reader.feed_data(b'{"model"')
    task = asyncio.ensure_future(read_body(request, 1024))
    await _until_waiting(reader, task)
    reader.feed_data(b':"m"}')
    reader.feed_eof()
    assert await task == b'{"model":"m"}'
    assert reader.reads == 2


async def test_a_chunked_body_is_read_to_its_end() -> None:
    request, reader = _request(None)
    task = asyncio.ensure_future(read_body(request, 1024))
    for part in (b'{"mo', b'del":', b'"m"}'):
        await _until_waiting(reader, task)
        reader.feed_data(part)
    await _until_waiting(reader, task)
    reader.feed_eof()
    assert await task == b'{"model":"m"}'


async def test_a_chunked_body_over_the_limit_is_refused_as_it_crosses_it() -> None:
    request, reader = _request(None)
    reader.feed_data(b"x" * 600)
    task = asyncio.ensure_future(read_body(request, 1000))
    await _until_waiting(reader, task)
    reader.feed_data(b"x" * 600)
    with pytest.raises(PayloadTooLarge):
        await task
