"""Who the end user is: the body's ``user``, else its ``safety_identifier``, else the configured header; 256 chars at most."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway_harness import config_doc, deployment


async def _end_user_of(gw: Any, request_id: str) -> object:
    async with asyncio.timeout(5):  # the log line is written on the loop's next turn after the answer
        while True:
            lines = [line for line in gw.log_lines() if line.get("request_id") == request_id]
            if lines:
                return lines[0]["end_user"]
            await asyncio.sleep(0.01)


async def test_the_body_wins_over_the_header_and_values_are_cut(gateway, upstream_a) -> None:
    doc = config_doc([deployment("a", upstream_a.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}])
    gw = await gateway(doc)
    cases: list[tuple[str, dict[str, Any], dict[str, str], object]] = [
        ("both", {"user": "u1", "safety_identifier": "s1"}, {"X-Modelgate-End-User": "hdr"}, "u1"),
        ("empty-user", {"user": "", "safety_identifier": "s2"}, {"X-Modelgate-End-User": "hdr"}, "s2"),
        ("not-strings", {"user": 5, "safety_identifier": None}, {"X-Modelgate-End-User": "hdr"}, "hdr"),
        ("header-only", {}, {"x-modelgate-end-user": "h" * 300}, "h" * 256),
        ("long-user", {"user": "u" * 300}, {}, "u" * 256),
        ("nobody", {}, {"X-Modelgate-End-User": ""}, None),
    ]
    async with gw.client() as client:
        for request_id, body, headers, _ in cases:
            await client.responses.create(
                model="gpt-4o", input="hi", extra_body=body, extra_headers={"X-Request-Id": request_id, **headers}
            )
    for request_id, _, _, expected in cases:
        assert await _end_user_of(gw, request_id) == expected, request_id
