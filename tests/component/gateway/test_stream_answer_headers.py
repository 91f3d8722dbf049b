"""A streamed answer's header block: the SSE content type and no caching, next to the gateway's own headers."""

from __future__ import annotations

from gateway_harness import config_doc, deployment


async def test_a_streamed_create_is_served_as_uncached_server_sent_events(gateway, upstream_a) -> None:
    doc = config_doc([deployment("a", upstream_a.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        async with client.responses.with_streaming_response.create(model="gpt-4o", input="hi", stream=True) as raw:
            events = [line async for line in raw.iter_lines() if line.startswith("event: ")]
            headers = raw.headers
    assert headers.get_list("content-type") == ["text/event-stream"]  # once, without parameters
    assert headers.get_list("cache-control") == ["no-cache"]
    assert headers["x-modelgate-deployment"] == "a" and headers["x-modelgate-attempts"] == "1"
    assert headers["x-request-id"].startswith("req_")
    assert headers["transfer-encoding"] == "chunked"
    assert events[0] == "event: response.created" and events[-1] == "event: response.completed"
