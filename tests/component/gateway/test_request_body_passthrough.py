"""The create body goes upstream as the client sent it when the deployment's model name is the
client's, and re-encoded with the deployment's name when it differs.

A float like 1e-7 tells the two apart: the SDK's JSON encoder writes ``1e-07``, the gateway's
(orjson) ``1e-7``. The executor skips copying the payload when nothing changes; this checks that
the skip never sends a stale model name and never re-encodes a body that needs no change.
"""

from __future__ import annotations

import orjson

from gateway_harness import config_doc, deployment
from raw_http_server import RawHttpServer, keep_alive, response

ANSWER = orjson.dumps(
    {
        "id": "resp_up1",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": "m",
        "output": [],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }
)


async def test_body_bytes_pass_unless_the_deployment_renames_the_model(gateway) -> None:
    async with RawHttpServer(
        keep_alive(lambda r: response(ANSWER, headers=[("Content-Type", "application/json")]))
    ) as up:
        doc = config_doc(
            [
                deployment("same", up.url(), model="gpt-4o"),
                deployment("renamed", up.url(), model="up-renamed"),
            ],
            [
                {"name": "gpt-4o", "targets": [{"deployment": "same"}]},
                {"name": "alias", "targets": [{"deployment": "renamed"}]},
            ],
        )
        gw = await gateway(doc)
        async with gw.client() as client:
            for model in ("gpt-4o", "alias", "gpt-4o"):
                raw = await client.responses.with_raw_response.create(
                    model=model, input="hi", extra_body={"probe": 1e-7}
                )
                assert raw.http_response.status_code == 200
    same, renamed, again = (orjson.loads(r.body) for r in up.requests)
    assert (same["model"], renamed["model"], again["model"]) == ("gpt-4o", "up-renamed", "gpt-4o")
    assert b'"probe":1e-07' in up.requests[0].body.replace(b" ", b"")  # the client's own bytes
    assert b'"probe":1e-7' in up.requests[1].body  # re-encoded with the deployment's model name
    assert up.requests[2].body == up.requests[0].body
