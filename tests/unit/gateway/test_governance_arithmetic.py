"""Pure parts of governance: windows and their resets, reservation estimates, charges, reset notation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelgate_gateway.config import BudgetWindow, counters, validate_data
from modelgate_gateway.governance import estimates
from modelgate_gateway.governance.answers import duration, rate_headers
from modelgate_gateway.governance.ledger import Counts
from modelgate_gateway.governance.policy import NANO_USD, compile_policy
from modelgate_gateway.observability.recording import Usage


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def test_minute_window_and_reset() -> None:
    now = ms(2026, 11, 30, 18, 5, 59) + 250
    window = counters.minute(now)
    assert window.ends_ms == ms(2026, 11, 30, 18, 6, 0)
    assert window.reset_seconds(now) == pytest.approx(0.75)
    assert counters.minute(window.ends_ms).id != window.id
    assert counters.minute(window.ends_ms - 1).id == window.id


@pytest.mark.parametrize(("kind", "now", "wid", "ends"), [
    (BudgetWindow.DAILY, ms(2026, 11, 30, 23, 59, 59), "d20261130", ms(2026, 12, 1)),
    (BudgetWindow.DAILY, ms(2026, 12, 1), "d20261201", ms(2026, 12, 2)),
    (BudgetWindow.MONTHLY, ms(2026, 12, 31, 12), "M202612", ms(2027, 1, 1)),
    (BudgetWindow.MONTHLY, ms(2028, 2, 29), "M202802", ms(2028, 3, 1)),
])
def test_budget_windows_are_utc_calendar_periods(kind: BudgetWindow, now: int, wid: str, ends: int) -> None:
    window = counters.budget_window(kind, now)
    assert (window.id, window.ends_ms) == (wid, ends)
    ttl = window.ttl_seconds(now)
    assert ttl is not None and ttl >= counters.GRACE_SECONDS  # late reconciles still land


def test_total_window_never_resets() -> None:
    window = counters.budget_window(BudgetWindow.TOTAL, ms(2026, 1, 1))
    assert (window.id, window.ends_ms, window.reset_seconds(0), window.ttl_seconds(0)) == ("total", None, None, None)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0ms"), (0.0201, "21ms"), (1.0, "1s"), (12.5, "12.5s"), (59.9986, "59.999s"), (59.9994, "1m0s"), (360.0, "6m0s"),
    (61.25, "1m1.25s"),
])
def test_reset_notation_is_openais(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def _policy(**spec: Any) -> Any:
    doc = {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": {
        "deployments": [{"name": "cheap", "provider": "mock", "model": "m"},
                        {"name": "dear", "provider": "mock", "model": "m",
                         "pricing": {"inputUsdPerMillionTokens": 10, "outputUsdPerMillionTokens": 40}}],
        "models": [{"name": "small", "targets": [{"deployment": "cheap"}],
                    "pricing": {"inputUsdPerMillionTokens": 1, "outputUsdPerMillionTokens": 2}},
                   {"name": "big", "targets": [{"deployment": "dear"}]},
                   {"name": "chain", "targets": [{"deployment": "cheap"}], "fallbacks": ["big"],
                    "pricing": {"inputUsdPerMillionTokens": 1, "outputUsdPerMillionTokens": 2}}],
        "state": {"redisUrl": "redis://127.0.0.1:1/0"},
        "governance": {"defaultMaxOutputTokens": 1000, "inputBytesPerToken": 4},
        **spec}}
    return compile_policy(validate_data(doc))


def test_reservation_bounds_output_and_takes_the_dearest_price_of_the_chain() -> None:
    policy = _policy()
    # 400 body bytes -> 100 input tokens; no max_output_tokens -> the default 1000
    assert estimates.reservation(policy, "small", {}, 400) == (1100, (100 * 1 + 1000 * 2) * 1000)
    assert estimates.reservation(policy, "small", {"max_output_tokens": 10}, 400)[0] == 110
    assert estimates.reservation(policy, "small", {"max_output_tokens": True}, 400)[0] == 1100  # not an int
    # the fallback's deployment is dearer: the reservation must cover it
    assert estimates.reservation(policy, "chain", {"max_output_tokens": 10}, 400)[1] == (100 * 10 + 10 * 40) * 1000


def test_charge_uses_the_prices_where_the_request_was_served() -> None:
    policy = _policy()
    usage = Usage(input_tokens=100, cached_input_tokens=0, output_tokens=10)
    assert estimates.charge(policy, usage, "chain", "cheap") == (110, (100 * 1 + 10 * 2) * 1000)
    assert estimates.charge(policy, usage, "big", "dear") == (110, (100 * 10 + 10 * 40) * 1000)
    assert estimates.charge(policy, usage, None, None) == (110, 0)  # unpriced: free, as in the metrics


def test_policy_holds_only_limited_keys_and_their_tenants() -> None:
    policy = _policy(auth={"keys": [
        {"name": "own", "sha256": "0" * 64, "limits": {"requestsPerMinute": 5}, "tenant": "t"},
        {"name": "tenanted", "sha256": "1" * 64, "tenant": "t"},
        {"name": "other-tenant", "sha256": "2" * 64, "tenant": "u"},
        {"name": "plain", "sha256": "3" * 64}]},
        governance={"tenants": [{"name": "t", "limits": {"budget": {"usd": 2.5, "window": "daily"}}}]})
    assert [s.redis_id for s in policy.keys["own"].subjects] == ["key:own", "tenant:t"]
    assert [s.redis_id for s in policy.keys["tenanted"].subjects] == ["tenant:t"]
    assert set(policy.keys) == {"own", "tenanted"}
    assert policy.tenants["t"].limits.budget_nano == 2.5 * NANO_USD


def test_limits_need_redis() -> None:
    from modelgate_gateway.config import ConfigError

    doc = {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": {
        "auth": {"keys": [{"name": "k", "sha256": "0" * 64, "limits": {"requestsPerMinute": 1}}]}}}
    with pytest.raises(ConfigError, match="redisUrl"):
        validate_data(doc)


def test_headers_show_the_subject_with_less_left() -> None:
    policy = _policy(auth={"keys": [
        {"name": "k", "sha256": "0" * 64, "tenant": "t", "limits": {"requestsPerMinute": 10, "tokensPerMinute": 100}}]},
        governance={"tenants": [{"name": "t", "limits": {"requestsPerMinute": 50}}]})
    subjects = policy.keys["k"].subjects
    headers = rate_headers(subjects, [Counts(3, 40, 0, 0, 0), Counts(48, 0, 0, 0, 0)], 1.5)
    assert headers == {
        "x-ratelimit-limit-requests": "50", "x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "1.5s",
        "x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "60", "x-ratelimit-reset-tokens": "1.5s"}
