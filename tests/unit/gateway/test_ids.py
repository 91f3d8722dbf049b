"""Signed response ids round-trip for their owner only, and refuse anything not signed by the shared key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import timeit

import pytest

from modelgate_gateway import ids

KEY = b"k" * 32
ALICE = ids.owner_tag(KEY, ids.key_owner("alice", None))
TEAM = ids.owner_tag(KEY, ids.key_owner("bob", "team-a"))
ANON = ids.owner_tag(KEY, ids.ANONYMOUS)


def _legacy(key: bytes, deployment: str, upstream_id: str) -> str:
    """An id as the gateway issued them before ids had owners (the version 0 layout)."""
    payload = deployment.encode() + b"\0" + upstream_id.encode()
    sig = hmac.new(key, payload, hashlib.sha256).digest()[:12]
    b64 = base64.urlsafe_b64encode
    return "resp_" + b64(payload).rstrip(b"=").decode() + b64(sig).rstrip(b"=").decode()


@pytest.mark.parametrize("deployment", ["a", "default/gpt-4o/openai-east", "ns/route/dep.with:odd-chars"])
@pytest.mark.parametrize("upstream", ["resp_abc", "resp_" + "f" * 48, "chatcmpl-xyz"])
@pytest.mark.parametrize("owner", [ALICE, TEAM, ANON])
def test_round_trip_for_the_owner(deployment: str, upstream: str, owner: bytes) -> None:
    rid = ids.encode(KEY, owner, deployment, upstream)
    assert rid.startswith("resp_")
    assert ids.decode(KEY, owner, rid) == ids.ResponseRef(deployment, upstream)
    assert ids.peek(rid) == ids.ResponseRef(deployment, upstream)  # routing fields stay readable


def test_same_inputs_give_the_same_id() -> None:
    assert ids.encode(KEY, ALICE, "a", "resp_1") == ids.encode(KEY, ALICE, "a", "resp_1")


def test_another_owner_gets_nothing() -> None:
    rid = ids.encode(KEY, ALICE, "a", "resp_1")
    assert ids.decode(KEY, TEAM, rid) is None
    assert ids.decode(KEY, ANON, rid) is None
    assert ids.decode(KEY, ANON, rid, accept_unowned=True) is None


def test_keys_of_one_tenant_share_an_owner_and_kinds_never_collide() -> None:
    assert ids.key_owner("bob", "team-a") == ids.key_owner("carol", "team-a")
    names = {ids.key_owner("x", None), ids.key_owner("y", "x"), ids.ANONYMOUS, ids.key_owner("anonymous", None)}
    assert len(names) == 4
    tags = {ids.owner_tag(KEY, name) for name in names}
    assert len(tags) == 4 and all(len(tag) == 8 for tag in tags)


def test_the_id_does_not_reveal_the_tenant() -> None:
    rid = ids.encode(KEY, ids.owner_tag(KEY, "tenant:acme-secret-project"), "a", "resp_1")
    payload = base64.urlsafe_b64decode(rid[5:-16] + "=" * (-len(rid[5:-16]) % 4))
    assert b"acme" not in payload and "acme" not in rid
    # the tag is keyed: another signing key gives another tag for the same tenant
    assert ids.owner_tag(b"other" * 8, "tenant:acme-secret-project") != ids.owner_tag(KEY, "tenant:acme-secret-project")


def test_moving_an_id_to_another_owner_breaks_its_signature() -> None:
    rid = ids.encode(KEY, ALICE, "a", "resp_1")
    body = rid[5:-16]
    payload = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[1:9] = TEAM  # swap the owner tag for another owner's
    moved = "resp_" + base64.urlsafe_b64encode(bytes(payload)).rstrip(b"=").decode() + rid[-16:]
    assert ids.decode(KEY, TEAM, moved) is None and ids.decode(KEY, ALICE, moved) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda rid: rid[:-1] + ("A" if rid[-1] != "A" else "B"),  # signature byte
        lambda rid: rid[:8] + ("A" if rid[8] != "A" else "B") + rid[9:],  # payload byte
        lambda rid: rid.replace("resp_", "resp-"),
        lambda rid: rid[:20],
        lambda rid: "resp_" + "!" * 40,
        lambda rid: "resp_" + "x" * 2000,
        lambda rid: rid[:-2] + "éé",  # non-ASCII where the signature is: refused, not a TypeError
    ],
)
def test_tampered_ids_are_refused(mangle) -> None:
    assert ids.decode(KEY, ALICE, mangle(ids.encode(KEY, ALICE, "a", "resp_1"))) is None


def test_other_signing_key_is_refused() -> None:
    other = b"other"
    assert ids.decode(other, ids.owner_tag(other, "key:alice"), ids.encode(KEY, ALICE, "a", "resp_1")) is None


def test_ids_issued_before_owners_are_accepted_only_when_asked() -> None:
    """Version 0 ids have no owner: the gateway accepts them only for callers without a key."""
    old = _legacy(KEY, "a", "resp_1")
    assert ids.decode(KEY, ANON, old, accept_unowned=True) == ids.ResponseRef("a", "resp_1")
    assert ids.decode(KEY, ANON, old) is None
    assert ids.decode(KEY, ALICE, old) is None
    assert ids.decode(b"other", ANON, old, accept_unowned=True) is None
    assert ids.peek(old) == ids.ResponseRef("a", "resp_1")


def test_a_kind_of_id_never_verifies_as_another() -> None:
    conversation = ids.seal(KEY, "conv_", ALICE, b"a\0resp_1")
    assert ids.unseal(KEY, "conv_", ALICE, conversation) == b"a\0resp_1"
    assert ids.decode(KEY, ALICE, "resp_" + conversation[5:]) is None
    assert ids.decode(KEY, ANON, "resp_" + conversation[5:], accept_unowned=True) is None


def test_encode_and_decode_stay_cheap() -> None:
    """Both run on the hot path of every response: a few microseconds, not more (measured ~1.5 µs
    each on the dev machine; the bound is loose for loaded CI machines)."""
    rid = ids.encode(KEY, ALICE, "default/gpt-4o/openai-east", "resp_" + "f" * 48)
    runs = 2000
    encode = (
        min(
            timeit.repeat(
                lambda: ids.encode(KEY, ALICE, "default/gpt-4o/openai-east", "resp_" + "f" * 48), number=runs, repeat=5
            )
        )
        / runs
    )
    decode = min(timeit.repeat(lambda: ids.decode(KEY, ALICE, rid), number=runs, repeat=5)) / runs
    owner = min(timeit.repeat(lambda: ids.owner_tag(KEY, "key:alice"), number=runs, repeat=5)) / runs
    assert encode < 20e-6 and decode < 20e-6 and owner < 5e-6, (encode, decode, owner)


def _stdlib_id(key: bytes, owner: bytes, deployment: str, upstream_id: str) -> str:
    """A version 1 id built with the standard library only: what the layout in ids' docstring says."""
    payload = b"\x01" + owner + deployment.encode() + b"\0" + upstream_id.encode()
    kind_key = hmac.digest(key, b"modelgate/id/v1/resp_", "sha256")
    sig = hmac.digest(kind_key, payload, "sha256")[:12]
    b64 = base64.urlsafe_b64encode
    return "resp_" + b64(payload).rstrip(b"=").decode() + b64(sig).rstrip(b"=").decode()


@pytest.mark.parametrize("key", [b"", b"k", b"k" * 32, b"k" * 64, b"k" * 65, bytes(range(256)) * 2])
@pytest.mark.parametrize("upstream", ["r", "resp_12", "resp_123", "resp_" + "x" * 300])
def test_ids_are_exactly_the_documented_hmac_and_base64url(key: bytes, upstream: str) -> None:
    # The signer computes HMAC-SHA256 with its own precomputed pads and encodes with binascii (speed):
    # every key length (shorter than, equal to and longer than the block) and every padding length
    # must give the bytes the standard library gives, or ids issued before would stop verifying.
    owner = ids.owner_tag(key, ids.key_owner("alice", None))
    assert owner == hmac.digest(hmac.digest(key, b"modelgate/owner/v1", "sha256"), b"key:alice", "sha256")[:8]
    rid = ids.encode(key, owner, "dep", upstream)
    assert rid == _stdlib_id(key, owner, "dep", upstream)
    assert ids.decode(key, owner, rid) == ids.ResponseRef("dep", upstream)
    # Version 0 ids are signed with the bare signing key, of any length.
    assert ids.decode(key, ids.owner_tag(key, ids.ANONYMOUS), _legacy(key, "dep", upstream), accept_unowned=True) == (
        ids.ResponseRef("dep", upstream)
    )
