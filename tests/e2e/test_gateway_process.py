"""The real ``modelgate-gateway`` process: quickstart, SIGTERM drain, check and schema commands."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from gateway_process import ROOT, GatewayProcess

QUICKSTART_KEY = "sk-modelgate-quickstart"


@pytest.fixture
def quickstart():
    gateway = GatewayProcess(ROOT / "examples" / "quickstart.yaml")
    gateway.start()
    yield gateway
    gateway.stop()


async def test_quickstart_serves_the_readme_example(quickstart) -> None:
    async with AsyncOpenAI(base_url=quickstart.base_url, api_key=QUICKSTART_KEY, max_retries=0) as client:
        response = await client.responses.create(model="gpt-4o", input="hi")
        assert "mock provider" in response.output_text
        types = [e.type async for e in await client.responses.create(model="gpt-4o", input="hi", stream=True)]
        assert types[0] == "response.created" and types[-1] == "response.completed"
        assert "response.output_text.delta" in types
        assert (await client.responses.retrieve(response.id)).output_text == response.output_text
        assert [m.id async for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]
    with urllib.request.urlopen(f"http://127.0.0.1:{quickstart.metrics_port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert "modelgate_requests_total{" in metrics and 'model="gpt-4o"' in metrics


def _slow_mock_config(tmp_path: Path) -> Path:
    text = " ".join(f"w{i}" for i in range(30))
    config = tmp_path / "slow.yaml"
    config.write_text(f"""
apiVersion: config.modelgate.dev/v1alpha1
kind: GatewayConfig
spec:
  deployments:
    - name: slow
      provider: mock
      model: slow-mock
      mock: {{text: "{text}", tokenDelaySeconds: 0.05}}
  models:
    - name: gpt-4o
      targets: [{{deployment: slow}}]
  auth: {{allowUnauthenticated: true}}
""")
    return config


async def test_sigterm_drains_in_flight_streams_then_exits_cleanly(tmp_path: Path) -> None:
    gateway = GatewayProcess(_slow_mock_config(tmp_path), "--shutdown-grace-seconds", "10")
    gateway.start()
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key="any", max_retries=0) as client:
            stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
            events = []
            async for event in stream:
                events.append(event)
                if event.type == "response.output_text.delta" and len(events) == 5:
                    gateway.terminate()  # mid-stream
            assert events[-1].type == "response.completed"
            deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            assert deltas == " ".join(f"w{i}" for i in range(30))
        code = await asyncio.to_thread(gateway.wait, 15)
        assert code == 0
    finally:
        _, stderr = gateway.stop()
    assert b"draining" in stderr


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelgate_gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_check_accepts_the_examples_and_names_every_error(tmp_path: Path) -> None:
    ok = _run("check", "--config", "examples/quickstart.yaml")
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\nspec:\n"
        "  deployments: [{name: a, model: m, baseUrl: 'ftp://x'}]\n"
    )
    result = _run("check", "--config", str(bad))
    assert result.returncode == 1
    assert "spec.deployments[0].baseUrl" in result.stderr
    bad.write_text(
        "apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\nspec:\n"
        "  deployments: [{name: a, model: m, baseUrl: 'http://x'}]\n"
        "  models: [{name: m, targets: [{deployment: nope}], fallbacks: [ghost]}]\n"
    )
    result = _run("check", "--config", str(bad))
    assert result.returncode == 1
    assert "spec.models[0].targets[0].deployment: unknown deployment 'nope'" in result.stderr
    assert "spec.models[0].fallbacks[0]: unknown model 'ghost'" in result.stderr


def test_schema_command_prints_the_checked_in_json_schema() -> None:
    result = _run("schema")
    assert result.returncode == 0
    checked_in = (ROOT / "gateway/src/modelgate_gateway/config/schemas/v1alpha1.json").read_text()
    assert json.loads(result.stdout) == json.loads(checked_in)
    assert result.stdout == checked_in


async def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    gateway = GatewayProcess(_slow_mock_config(tmp_path), "--workers", "2", metrics_ports=2)
    await asyncio.to_thread(gateway.start, 30)
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key="any", max_retries=0) as client:
            first = await client.responses.create(model="gpt-4o", input="hi")
            results = await asyncio.gather(*(client.responses.create(model="gpt-4o", input=str(i)) for i in range(8)))
            assert all(r.output_text == first.output_text for r in results)
        for port in (gateway.metrics_port, gateway.metrics_port + 1):  # one metrics port per worker
            await asyncio.to_thread(gateway.wait_for_port, port)
        gateway.terminate()
        assert await asyncio.to_thread(gateway.wait, 30) == 0
    finally:
        gateway.stop()
