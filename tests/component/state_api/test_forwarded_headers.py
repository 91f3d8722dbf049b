"""Client headers the API defines for behaviour reach the upstream; credentials never do."""

from __future__ import annotations

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import config_doc, deployment


async def test_allowlisted_headers_are_forwarded_and_credentials_are_not(start_gateway,
                                                                         responses_upstream: FakeResponsesUpstream
                                                                         ) -> None:
    doc = config_doc([deployment("r", responses_upstream.base_url, headers={"X-Team": "configured"})],
                     [{"name": "m", "targets": [{"deployment": "r"}]}],
                     forwardHeaders=["OpenAI-Beta", "Idempotency-Key", "X-Team"])
    gw = await start_gateway(doc)
    sent = {"OpenAI-Beta": "responses=v1", "Idempotency-Key": "idem-1", "X-Team": "client", "Cookie": "c=1",
            "X-Other": "o"}
    async with gw.client() as client:
        created = await client.responses.create(model="m", input="hi", extra_headers=sent)
        await client.responses.retrieve(created.id, extra_headers={"OpenAI-Beta": "responses=v1",
                                                                  "Idempotency-Key": "k" * 2000})
    create, retrieve = responses_upstream.seen
    assert create.headers["OpenAI-Beta"] == "responses=v1" and create.headers["Idempotency-Key"] == "idem-1"
    assert create.headers.getall("X-Team") == ["configured"]  # the deployment's own header wins
    assert create.headers["Authorization"] == "Bearer sk-upstream-secret-value"  # never the client's key
    assert "Cookie" not in create.headers and "X-Other" not in create.headers
    assert retrieve.headers["OpenAI-Beta"] == "responses=v1" and "Idempotency-Key" not in retrieve.headers


async def test_by_default_openai_beta_is_forwarded(start_gateway, responses_upstream: FakeResponsesUpstream) -> None:
    doc = config_doc([deployment("r", responses_upstream.base_url)], [{"name": "m", "targets": [{"deployment": "r"}]}])
    gw = await start_gateway(doc)
    async with gw.client() as client:
        await client.responses.create(model="m", input="hi", extra_headers={"OpenAI-Beta": "x=1"})
    assert responses_upstream.seen[0].headers["OpenAI-Beta"] == "x=1"
