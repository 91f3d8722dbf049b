"""A fresh registry and observer per test, with the request log going to a buffer."""

import io
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from modelgate_gateway.observability.observer import GatewayObserver
from observability_traffic import CHECKSUM, make_config


class LogSink(io.BytesIO):
    def lines(self) -> list[bytes]:
        return self.getvalue().splitlines()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def log_sink() -> LogSink:
    return LogSink()


@pytest.fixture
def observer(registry: CollectorRegistry, log_sink: LogSink) -> Iterator[GatewayObserver]:
    obs = GatewayObserver(
        registry, log_stream=log_sink, clock=lambda: 5000.0, wall_clock=lambda: 1_700_000_000.0
    )
    obs.config_loaded(make_config(), CHECKSUM)
    yield obs
    obs.close_log()
