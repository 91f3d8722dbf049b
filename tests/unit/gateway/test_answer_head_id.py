"""A JSON answer's first-key id is found without the regular expression when it is compact, and
exactly where the regular expression finds it in every layout (the rewrite splices that span)."""

from __future__ import annotations

import pytest

from modelgate_gateway.streaming.answer import _HEAD_ID, _head_id


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"resp_up1","object":"response"}',  # compact: the searches
        b'{"id":"resp_\\"up\\"1","object":"response"}',  # an escaped quote inside: the expression
        b'{"id":"resp_up1\\\\","object":"response"}',  # an escaped backslash ending it
        b'{\n  "id": "resp_up1",\n  "object": "response"\n}',  # indented, as OpenAI writes it
        b' \r\n{"id" : "resp_up1"}',
        b'{"id":"resp_up1',  # cut short: no token
        b'{"id":"',
        b'{"id":7,"object":"response"}',  # not a string
        b'{"object":"response","id":"resp_up1"}',  # not the first key
        b'{"identity":"resp_up1"}',
        b"[]",
        b"",
    ],
)
def test_the_head_id_span_is_the_regular_expressions(body: bytes) -> None:
    match = _HEAD_ID.match(body)
    assert _head_id(body) == (match.span(1) if match is not None else None)
