"""A streamed answer's id fields are rewritten wherever its pieces are cut, holding back little.

The relay of large answers (``streaming/large_answer.py``) sees the answer in the pieces the
socket gives: a key, its colon or its value may be split across any of them, and a key is
reported by the scanner only once the bytes after it came in. Cut every way, the bytes written
are the answer with exactly those ids replaced, and what is held at any time stays small.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from modelgate_gateway.streaming.large_answer import FIELD_BYTES, AnswerPieces, BadAnswer

NEW = {b"id": b'"resp_GATEWAY_ID"', b"previous_response_id": b'"resp_GATEWAY_PREVIOUS"',
       b"conversation": b'"conv_GATEWAY"'}
TEXT = "x" * 3000 + ' "id": "resp_up" "previous_response_id":"resp_prev" '


def _replace(name: bytes, token: bytes) -> bytes | None:
    return NEW[name] if token in (b'"resp_up"', b'"resp_prev"', b'"conv_up"') else None


def _answer(conversation: object) -> bytes:
    return orjson.dumps({"id": "resp_up", "object": "response", "output": [{"id": "msg_1", "text": TEXT}],
                         "previous_response_id": "resp_prev", "conversation": conversation,
                         "metadata": {"id": "resp_up", "conversation": "conv_up"},
                         "usage": {"input_tokens": 3, "output_tokens": 5}}, option=orjson.OPT_INDENT_2)


def _cut(body: bytes, size: int) -> Iterator[bytes]:
    return (body[at:at + size] for at in range(0, len(body), size))


def _relay(body: bytes, size: int, fixed: bool = False) -> tuple[bytes, int]:
    """What the relay writes for ``body`` cut into ``size``-byte pieces, and the most it held."""
    pieces = AnswerPieces(_replace)
    written: list[bytes] = []
    most = 0
    started = False
    for piece in _cut(body, size):
        pieces.add(piece)
        started = started or pieces.ready()
        if started:
            pieces.fixed_length = fixed
            written += pieces.take()
        most = max(most, sum(map(len, pieces.held.pieces)))
    pieces.end()
    written += pieces.take()
    written += pieces.take(ended=True)
    assert not pieces.held.pieces and not pieces.held.splices
    return b"".join(written), most


@pytest.mark.parametrize("size", [1, 2, 3, 5, 16, 63, 64, 65, 200, 1000, 100_000])
@pytest.mark.parametrize("form", ["object", "string"])
def test_every_id_field_is_rewritten_wherever_the_pieces_are_cut(size: int, form: str) -> None:
    body = _answer({"id": "conv_up"} if form == "object" else "conv_up")
    got, most = _relay(body, size)
    expected = orjson.loads(body)
    expected.update(id="resp_GATEWAY_ID", previous_response_id="resp_GATEWAY_PREVIOUS",
                    conversation={"id": "conv_GATEWAY"} if form == "object" else "conv_GATEWAY")
    assert orjson.loads(got) == expected  # the same text and metadata: only those fields changed
    assert len(got) == len(body) + sum(len(v) for v in NEW.values()) - len(b'"resp_up""resp_prev""conv_up"')
    # held: the id's value and what comes before it, then at most a field's window and a piece
    assert most <= max(size, body.index(b'"object"')) + FIELD_BYTES + 2 * size


def test_values_that_are_not_ids_pass_as_they_are() -> None:
    body = orjson.dumps({"id": "resp_up", "previous_response_id": None, "conversation": {"id": "conv_other"},
                         "output": [], "text": TEXT})
    for size in (1, 7, 4096):
        assert _relay(body, size)[0] == body.replace(b'"resp_up"', NEW[b"id"], 1)


def test_an_id_that_would_change_a_length_already_sent_is_a_bad_answer() -> None:
    body = _answer(None)
    with pytest.raises(BadAnswer, match="previous_response_id"):
        _relay(body, 512, fixed=True)


def test_the_start_waits_for_the_id_and_the_fields_found_with_it() -> None:
    body = b'{"previous_response_id": "resp_prev", "id": "resp_up", "output": "' + b"y" * 5000 + b'"}'
    pieces = AnswerPieces(_replace)
    pieces.add(body[:30])
    assert not pieces.ready()  # the previous_response_id's value is not complete yet
    pieces.add(body[30:60])
    assert not pieces.ready()  # no id yet
    pieces.add(body[60:])
    assert pieces.ready() and pieces.held.growth == len(NEW[b"id"]) + len(NEW[b"previous_response_id"]) - 20
    assert pieces.may_grow(previous=True, conversation=True)  # no conversation seen: it may still come
    assert not pieces.may_grow(previous=True, conversation=False)
