"""One SSE ``data`` reader for the relay, the id rewrite and token estimation (http1.eventstream).

Before, the relay stripped every leading space of a ``data:`` value and ignored CRLF line ends,
while estimation removed one space and handled CRLF: the same event read two ways."""

from __future__ import annotations

from modelgate_gateway.http1.eventstream import event_data
from modelgate_gateway.observability.estimating import sse_payloads
from modelgate_gateway.streaming.sse import iter_events


def test_one_leading_space_is_removed_and_lines_join_with_newline() -> None:
    assert event_data(b"event: x\ndata: {\"a\":\ndata:  1}") == b'{"a":\n 1}'
    assert event_data(b"event: x\n: comment") == b""


def test_crlf_events_read_like_lf_events_on_every_path() -> None:
    event = b'event: response.created\r\ndata: {"type":"response.created","response":{"id":"r"}}'
    assert event_data(event) == b'{"type":"response.created","response":{"id":"r"}}'
    assert [data for _, data in iter_events(event)] == [event_data(event)]
    assert list(sse_payloads([event])) == [{"type": "response.created", "response": {"id": "r"}}]
