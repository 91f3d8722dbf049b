"""Process settings: every knob from a flag or its MODELGATE_* variable, validated at start-up."""

import pytest

from modelgate_gateway.settings import GatewaySettings, parse_settings


def test_client_limits_default_to_documented_values() -> None:
    settings = parse_settings(["--config", "c.yaml"], env={})
    assert (settings.client_header_timeout_seconds, settings.client_body_timeout_seconds,
            settings.client_idle_timeout_seconds, settings.max_client_connections) == (10.0, 60.0, 75.0, 8192)
    assert settings == GatewaySettings(config_path="c.yaml")


def test_client_limits_come_from_flags_or_the_environment_and_flags_win() -> None:
    env = {"MODELGATE_CLIENT_HEADER_TIMEOUT_SECONDS": "2.5", "MODELGATE_CLIENT_BODY_TIMEOUT_SECONDS": "30",
           "MODELGATE_CLIENT_IDLE_TIMEOUT_SECONDS": "620", "MODELGATE_MAX_CLIENT_CONNECTIONS": "100"}
    settings = parse_settings(["--max-client-connections", "50"], env=env)
    assert (settings.client_header_timeout_seconds, settings.client_body_timeout_seconds,
            settings.client_idle_timeout_seconds, settings.max_client_connections) == (2.5, 30.0, 620.0, 50)


@pytest.mark.parametrize("argv", [
    ["--client-header-timeout-seconds", "0"],
    ["--client-body-timeout-seconds", "-1"],
    ["--client-idle-timeout-seconds", "nan"],
    ["--client-idle-timeout-seconds", "inf"],
    ["--max-client-connections", "0"],
    ["--shutdown-grace-seconds", "-1"],
])
def test_nonsense_limits_stop_the_start(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match=argv[0]):
        parse_settings(argv, env={})
