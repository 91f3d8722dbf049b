"""An absurd ``Retry-After`` on a 429 neither ejects a deployment for good nor reaches a client.

One 429 saying ``Retry-After: inf`` (or ``999999999``, ``1e400``, a year-9999 date) used to take
its deployment out of rotation forever, invisibly (the health gauge stayed 0, a reload kept the
deferral), gave the client a 500 on a single-deployment model (``round(inf)``), and sent clients
``Retry-After: 251606248458``. Now the deferral is cut to ``retry.retryAfterCapSeconds`` and
shown in ``modelgate_deferrals_total{capped="true"}`` and ``modelgate_deployment_cooling_down``;
unusable values (``nan``, negative, text) defer nothing; a reload re-applies the cap.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import config_doc, deployment, harnesses
from raw_http_server import eventually

ABSURD = ["999999999", "inf", "1e400", "Infinity", "Fri, 31 Dec 9999 23:59:59 GMT"]
UNUSABLE = ["nan", "-5", "soon", "-inf"]


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeResponsesUpstream, FakeResponsesUpstream]]:
    a, b = FakeResponsesUpstream("a", text="Alpha answers"), FakeResponsesUpstream("b", text="Bravo answers")
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator:
    async with harnesses(tmp_path) as start:
        yield start


def _primary_and_standby(a: FakeResponsesUpstream, b: FakeResponsesUpstream, cap: float) -> dict:
    return config_doc([deployment("a", a.base_url), deployment("b", b.base_url)],
                      [{"name": "gpt-4o",
                        "targets": [{"deployment": "a", "weight": 1}, {"deployment": "b", "weight": 0}],
                        "retry": {"retryAfterCapSeconds": cap}}])


def _sample(gw, name: str, **labels: str) -> float | None:
    return gw.registry.get_sample_value(name, labels)


async def _served_by(gw, deployment_name: str) -> None:
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == deployment_name


@pytest.mark.parametrize("retry_after", ABSURD)
async def test_an_absurd_retry_after_defers_the_deployment_only_up_to_the_cap(
        gateway, upstreams, retry_after: str) -> None:
    a, b = upstreams
    a.script = [Behaviour(status=429, headers={"Retry-After": retry_after})]
    gw = await gateway(_primary_and_standby(a, b, cap=0.3))
    await _served_by(gw, "b")  # the 429 moved the request to the standby
    board = gw.state.board
    assert 0 < board.deferred_for("a", time.monotonic()) <= 0.3
    await eventually(lambda: _sample(gw, "modelgate_deferrals_total", deployment="a", capped="true") == 1)
    assert _sample(gw, "modelgate_deployment_cooling_down", deployment="a") == 1
    await _served_by(gw, "b")  # while deferred, a is skipped: no second 429
    assert len(a.creates) == 1
    await eventually(lambda: board.deferred_for("a", time.monotonic()) == 0, timeout=5)
    await _served_by(gw, "a")  # back in rotation after the cap, not after 31 years
    assert _sample(gw, "modelgate_deployment_cooling_down", deployment="a") == 0


@pytest.mark.parametrize("retry_after", UNUSABLE)
async def test_an_unusable_retry_after_defers_nothing(gateway, upstreams, retry_after: str) -> None:
    a, b = upstreams
    a.script = [Behaviour(status=429, headers={"Retry-After": retry_after})]
    gw = await gateway(_primary_and_standby(a, b, cap=30))
    await _served_by(gw, "b")
    assert gw.state.board.deferred_for("a", time.monotonic()) == 0
    await _served_by(gw, "a")  # an ordinary failure: a takes the next request
    assert _sample(gw, "modelgate_deferrals_total", deployment="a", capped="true") == 0
    assert _sample(gw, "modelgate_deferrals_total", deployment="a", capped="false") == 0


@pytest.mark.parametrize("retry_after", ABSURD + UNUSABLE)
@pytest.mark.parametrize("header", ["Retry-After", "retry-after-ms"])
async def test_a_single_deployment_model_answers_429_with_a_sane_retry_after(
        gateway, upstreams, header: str, retry_after: str) -> None:
    a, _ = upstreams
    a.script = [Behaviour(status=429, headers={header: retry_after})] * 3
    doc = config_doc([deployment("a", a.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError) as caught:  # never a 500
            await client.responses.create(model="gpt-4o", input="hi")
    assert caught.value.body["code"] == "rate_limit_exceeded"
    sent = caught.value.response.headers.get("retry-after")
    if sent is not None:  # only when the upstream gave a usable time
        assert 1 <= int(sent) <= 60  # the default retryAfterCapSeconds
    if retry_after in ABSURD and (header == "Retry-After" or "9999 " not in retry_after):  # no ms dates
        assert sent == "60"
    await eventually(lambda: any(line["status"] == 429 for line in gw.log_lines()))


async def test_a_reload_cuts_a_standing_deferral_to_the_new_cap(gateway, upstreams) -> None:
    a, b = upstreams
    a.script = [Behaviour(status=429, headers={"Retry-After": "999999999"})]
    gw = await gateway(_primary_and_standby(a, b, cap=3600))
    await _served_by(gw, "b")
    assert gw.state.board.deferred_for("a", time.monotonic()) > 3000  # cut to the cap, still long
    old = gw.state.current().checksum
    gw.write(_primary_and_standby(a, b, cap=0.2))  # the operator lowers the cap
    await gw.wait_for_checksum_change(old)
    assert gw.state.board.deferred_for("a", time.monotonic()) <= 0.2
    await eventually(lambda: gw.state.board.deferred_for("a", time.monotonic()) == 0, timeout=5)
    await _served_by(gw, "a")
