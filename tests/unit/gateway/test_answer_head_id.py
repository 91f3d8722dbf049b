"""A JSON answer's first-key id is found without the regular expression when it is compact, and
exactly where the regular expression finds it in every layout when it holds no escape (the rewrite
splices that span; an escaped id goes the JSON parser's way)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from modelgate_gateway.streaming.answer import _HEAD_ID, _JsonRelay, _plain_head_id


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
def test_the_head_id_span_is_the_regular_expressions_unless_escaped(body: bytes) -> None:
    match = _HEAD_ID.match(body)
    plain = match is not None and b"\\" not in match.group(1)
    assert _plain_head_id(body) == (match.span(1) if plain and match is not None else None)


def _whole(body: bytes) -> tuple[bytes, SimpleNamespace]:
    """What a small JSON answer becomes: ``_JsonRelay.whole`` with stand-ins for what it reads."""
    reply = SimpleNamespace(status=200, headers={"Content-Type": "application/json"})
    opened = SimpleNamespace(reply=reply, dep=SimpleNamespace(redactor=None))
    record = SimpleNamespace(final=None, usage=None, response_id=None)
    relay = _JsonRelay(cast(Any, None), cast(Any, opened), cast(Any, record), lambda up: "resp_GW" + up[-1], {})
    return cast(bytes, relay.whole(body).body), record


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "resp_up1", "object": "response", "metadata": {"id": "resp_up1"}},
        {"id": 'resp_"up"1', "object": "response", "metadata": {"id": 'resp_"up"1'}},
        {"object": "response", "id": "resp_up1", "metadata": {"id": "resp_up1"}},
        {"id": "resp_up\u00e91", "object": "response", "metadata": {}},
    ],
)
@pytest.mark.parametrize("indent", [False, True])
def test_only_the_top_level_id_of_a_whole_answer_is_rewritten_in_every_layout(
    answer: dict[str, object], indent: bool
) -> None:
    body = orjson.dumps(answer, option=orjson.OPT_INDENT_2 if indent else 0)
    out, record = _whole(body)
    assert orjson.loads(out) == {**answer, "id": "resp_GW1"}
    assert record.response_id == "resp_GW1" and record.final == answer


def test_an_id_that_is_not_a_response_id_stays() -> None:
    body = b'{"id":"msg_1","object":"response"}'
    out, record = _whole(body)
    assert out == body and record.response_id is None
