"""Two gateway processes, one Redis: every background response is counted exactly once.

Both gateways poll every response; the one that created half of them is killed (SIGKILL, so it
hands nothing back) while they run, the other takes its follow-ups over once their lease lapses,
and the killed one comes back. Counting is checked in both the request logs and the metrics, and
in the key's budget: its spend ends at the real cost of the responses, each once.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
import yaml

from fake_responses_upstream import FakeResponsesUpstream
from gateway_process import GatewayProcess
from redis_server import redis_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

PER_GATEWAY = 4
KEY = "sk-team-background-0123456789"
SPENT = "{modelgate:gov}:key:team:bg:total"
"""The key's budget counters in Redis (docs/governance.md): spent and reserved, in nano-USD."""


def _config(tmp_path: Path, upstream: FakeResponsesUpstream, redis_url: str) -> Path:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "config.modelgate.dev/v1alpha1",
                "kind": "GatewayConfig",
                "spec": {
                    "deployments": [
                        {"name": "a", "provider": "openai-compatible", "baseUrl": upstream.base_url, "model": "up"}
                    ],
                    "models": [
                        {
                            "name": "gpt-4o",
                            "targets": [{"deployment": "a"}],
                            "pricing": {"inputUsdPerMillionTokens": 2.0, "outputUsdPerMillionTokens": 8.0},
                        }
                    ],
                    "auth": {
                        "keys": [
                            {
                                "name": "team",
                                "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                                "limits": {"budget": {"usd": 1000, "window": "total"}},
                            }
                        ]
                    },
                    "responseIds": {"signingKey": {"file": "signing-key"}},
                    "state": {"redisUrl": redis_url},
                    "observability": {
                        "backgroundFollowUp": {
                            "pollIntervalSeconds": 0.1,
                            "maxPollIntervalSeconds": 0.3,
                            "leaseSeconds": 1,
                        }
                    },
                },
            }
        )
    )
    (tmp_path / "signing-key").write_text("shared-by-both-processes")
    return config


def _counted(lines: list[dict[str, Any]]) -> Counter[str]:
    return Counter(line["response_id"] for line in lines if line["route"] == "background")


def _metric_total(text: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^modelgate_background_responses_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    )


def _pending(text: str) -> float:
    found = re.search(r"^modelgate_background_responses_pending (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


async def _until(what: str, probe: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(probe):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def test_each_background_response_is_counted_once_across_two_gateways_and_a_restart(
    tmp_path: Path,
    redis_server,  # noqa: F811
) -> None:
    upstream = FakeResponsesUpstream("a", text="Alpha answers with seven short words")
    await upstream.start()
    config = _config(tmp_path, upstream, redis_server.url)
    first, second = GatewayProcess(config), GatewayProcess(config)
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    restarted: GatewayProcess | None = None
    try:
        async with (
            openai.AsyncOpenAI(base_url=first.base_url, api_key=KEY, max_retries=0, timeout=10) as one,
            openai.AsyncOpenAI(base_url=second.base_url, api_key=KEY, max_retries=0, timeout=10) as two,
        ):
            ids = [
                (await client.responses.create(model="gpt-4o", input=f"q{i}", background=True)).id
                for client in (one, two)
                for i in range(PER_GATEWAY)
            ]
            for rid in ids:  # both poll every response while it runs: nothing to count yet
                assert (await one.responses.retrieve(rid)).status == "queued"
                assert (await two.responses.retrieve(rid)).status == "queued"

            # The creates' charges (their reservations) reached Redis before the crash.
            budget = redis.Redis(port=redis_server.port, socket_timeout=5)
            await _until("the creates were charged", lambda: int(budget.hget(SPENT, "reserved") or -1) == 0)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGKILL)  # a crash: its leases lapse, nothing is handed back
            await asyncio.to_thread(first.proc.wait, 10)
            upstream.complete(next(iter(upstream.running)))  # one ends while it is down
            # the survivor adopts the dead one's follow-ups and counts the one that ended
            await _until("the survivor counted the response that ended", lambda: len(_counted(second.log_lines())) == 1)

            restarted = GatewayProcess(config)
            await asyncio.to_thread(restarted.start)
            async with openai.AsyncOpenAI(base_url=restarted.base_url, api_key=KEY, max_retries=0, timeout=10) as three:
                upstream.complete()  # all the rest end now
                real_nano = 0
                for rid in ids:  # both live gateways poll every one of them, concurrently
                    done = await asyncio.gather(three.responses.retrieve(rid), two.responses.retrieve(rid))
                    assert {r.status for r in done} == {"completed"}
                    usage = done[0].usage
                    assert usage is not None
                    real_nano += round((usage.input_tokens * 2.0 + usage.output_tokens * 8.0) / 1e6 * 1e9)

        def all_settled() -> bool:
            texts = [restarted.scrape(), second.scrape()]  # type: ignore[union-attr]
            return all(_pending(t) == 0 for t in texts) and sum(_metric_total(t) for t in texts) >= len(ids)

        def logged() -> Counter[str]:
            return _counted(first.log_lines()) + _counted(second.log_lines()) + _counted(restarted.log_lines())  # type: ignore[union-attr]

        await _until("every response counted and nothing left to follow", all_settled)
        await _until("every count in the request logs", lambda: sum(logged().values()) >= len(ids))
        counted = logged()
        assert counted == Counter({rid: 1 for rid in ids})
        assert _metric_total(restarted.scrape()) + _metric_total(second.scrape()) == len(ids)
        charged = [line for p in (second, restarted) for line in p.log_lines() if line["route"] == "background"]
        assert all(line["usage_source"] == "followed_up" and line["output_tokens"] == 6 for line in charged)
        # Each create charged its reservation; each end corrected it to its real cost, once.
        await _until("the corrections reached Redis", lambda: int(budget.hget(SPENT, "spent") or 0) == real_nano)
        assert int(budget.hget(SPENT, "reserved") or 0) == 0
        budget.close()
    finally:
        stops = [asyncio.to_thread(p.stop) for p in (first, second, restarted) if p is not None]
        await asyncio.gather(*stops)
        await upstream.close()
