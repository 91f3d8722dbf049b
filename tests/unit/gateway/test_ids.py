"""Signed response ids round-trip and refuse anything not signed by the shared key."""

from __future__ import annotations

import pytest

from modelgate_gateway import ids

KEY = b"k" * 32


@pytest.mark.parametrize("deployment", ["a", "default/gpt-4o/openai-east", "ns/route/dep.with:odd-chars"])
@pytest.mark.parametrize("upstream", ["resp_abc", "resp_" + "f" * 48, "chatcmpl-xyz"])
def test_round_trip(deployment: str, upstream: str) -> None:
    rid = ids.encode(KEY, deployment, upstream)
    assert rid.startswith("resp_")
    assert ids.decode(KEY, rid) == ids.ResponseRef(deployment, upstream)


def test_same_inputs_give_the_same_id() -> None:
    assert ids.encode(KEY, "a", "resp_1") == ids.encode(KEY, "a", "resp_1")


@pytest.mark.parametrize("mangle", [
    lambda rid: rid[:-1] + ("A" if rid[-1] != "A" else "B"),  # signature byte
    lambda rid: rid[:8] + ("A" if rid[8] != "A" else "B") + rid[9:],  # payload byte
    lambda rid: rid.replace("resp_", "resp-"),
    lambda rid: rid[:20],
    lambda rid: "resp_" + "!" * 40,
    lambda rid: "resp_" + "x" * 2000,
])
def test_tampered_ids_are_refused(mangle) -> None:
    assert ids.decode(KEY, mangle(ids.encode(KEY, "a", "resp_1"))) is None


def test_other_key_is_refused() -> None:
    assert ids.decode(b"other", ids.encode(KEY, "a", "resp_1")) is None
