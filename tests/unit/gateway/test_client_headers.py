"""Which client header values are passed on upstream (handlers/clientheaders.py)."""

from __future__ import annotations

from multidict import CIMultiDict

from modelgate_gateway.handlers.clientheaders import NONE, forwarded


def test_only_listed_present_plain_values_are_forwarded() -> None:
    headers = CIMultiDict({"openai-beta": "responses=v1", "Idempotency-Key": "caf\udce9", "X-Long": "x" * 1025,
                           "X-Tab": "a\tb", "X-Other": "o"})
    names = ("OpenAI-Beta", "Idempotency-Key", "X-Long", "X-Tab", "X-Missing")
    assert forwarded(headers, names) == (("OpenAI-Beta", "responses=v1"),)
    assert forwarded(CIMultiDict(), names) is NONE
