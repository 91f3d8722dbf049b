"""The request log: one JSON line per request, content only on request, never blocking."""

import json
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest

from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.observability.recording import AttemptOutcome, AttemptRecord, Usage
from modelgate_gateway.observability.requestlog import RequestLogWriter
from observability_traffic import CHECKSUM, config_data, delta_block, record


def _observer(registry: CollectorRegistry, tmp_path: Path, **log: object) -> GatewayObserver:
    from modelgate_gateway.config import parse_config

    data = config_data()
    data["spec"]["observability"]["requestLog"] = {"path": str(tmp_path / "requests.log"), **log}
    obs = GatewayObserver(registry)
    obs.config_loaded(parse_config(json.dumps(data), fmt="json"), CHECKSUM)
    return obs


def _run(obs: GatewayObserver, rec: object) -> None:
    obs.request_started(rec)  # type: ignore[arg-type]
    obs.request_finished(rec)  # type: ignore[arg-type]


SECRET_BODY = json.dumps({"model": "gpt-4o", "input": "my secret prompt"}).encode()


def test_one_line_per_request_with_the_accounting_fields(tmp_path: Path) -> None:
    obs = _observer(CollectorRegistry(), tmp_path)
    attempts = [
        AttemptRecord("gpt-4o", "east", AttemptOutcome.TIMEOUT),
        AttemptRecord("gpt-4o", "west", AttemptOutcome.SUCCESS, 200),
    ]
    _run(
        obs,
        record(
            deployment="west",
            end_user="user@example.com",
            stream=True,
            ttft=0.25,
            duration=2.0,
            usage=Usage(100, 0, 10, 0),
            attempts=attempts,
            request_body=SECRET_BODY,
            stream_blocks=[delta_block("secret answer")],
        ),
    )
    _run(obs, record(start=2000.0, usage=Usage(1, 0, 1, 0)))
    obs.close_log()
    lines = (tmp_path / "requests.log").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["request_id"] == "req_1000.0"
    assert first["key"] == "team-a"
    assert first["end_user"] == "user@example.com"
    assert (first["model"], first["deployment"], first["attempts"]) == ("gpt-4o", "west", 2)
    assert [a["outcome"] for a in first["attempt_path"]] == ["timeout", "success"]
    assert first["input_tokens"] == 100 and first["output_tokens"] == 10
    assert first["usage_estimated"] is False and first["priced"] is True
    assert first["cost_usd"] == (100 * 5 + 10 * 20) / 1e6
    assert first["duration_seconds"] == 2.0 and first["ttft_seconds"] == 0.25
    assert first["status"] == 200 and first["stream"] is True
    assert "secret" not in lines[0]
    assert "input" not in first and "output" not in first


def test_content_is_logged_only_when_enabled(tmp_path: Path) -> None:
    obs = _observer(CollectorRegistry(), tmp_path, includeContent=True)
    _run(
        obs,
        record(
            stream=True,
            usage=Usage(1, 0, 1, 0),
            request_body=SECRET_BODY,
            stream_blocks=[delta_block("secret "), delta_block("answer")],
        ),
    )
    obs.close_log()
    line = json.loads((tmp_path / "requests.log").read_text())
    assert (line["input"], line["output"]) == ("my secret prompt", "secret answer")


def test_strings_that_cannot_be_encoded_are_logged_escaped_and_scraped(tmp_path: Path) -> None:
    """A header byte that is not UTF-8 reaches the record as a surrogate (aiohttp decodes with
    surrogateescape): it must neither fail the scrape for good nor lose the log line."""
    registry = CollectorRegistry()
    obs = _observer(registry, tmp_path)
    _run(obs, record(end_user="caf\udce9\udcff", usage=Usage(1, 0, 1, 0)))
    _run(obs, record(start=2000.0, end_user="tab\there", usage=Usage(1, 0, 1, 0), response_id="resp_\udcff"))
    obs.close_log()
    text = generate_latest(registry).decode()  # raised UnicodeEncodeError on every scrape
    assert 'end_user="caf\\\\xe9\\\\xff"' in text and 'end_user="tab\\\\x09here"' in text
    lines = [json.loads(line) for line in (tmp_path / "requests.log").read_text().splitlines()]
    assert [line["end_user"] for line in lines] == ["caf\\xe9\\xff", "tab\\x09here"]
    assert lines[1]["response_id"] == "resp_\\xff"  # any other field orjson cannot write: escaped too


def test_disabled_log_writes_nothing(tmp_path: Path) -> None:
    obs = _observer(CollectorRegistry(), tmp_path, enabled=False)
    _run(obs, record(usage=Usage(1, 0, 1, 0)))
    obs.close_log()
    assert not (tmp_path / "requests.log").exists()


class _BlockedSink:
    """A sink whose write blocks until released, like a full pipe."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.data = b""

    def write(self, data: bytes) -> int:
        self.entered.set()
        assert self.release.wait(10)
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def test_a_stalled_sink_never_blocks_the_writer_and_drops_are_counted() -> None:
    registry = CollectorRegistry()
    dropped = Counter("dropped", "d", registry=registry)
    sink = _BlockedSink()
    writer = RequestLogWriter(
        dropped=dropped,
        stream=sink,
        max_pending_lines=3,
        flush_lines=1,  # type: ignore[arg-type]
    )
    writer.write(b"1\n")  # wakes the thread at once; it blocks inside the sink's write()
    assert sink.entered.wait(10)
    for _ in range(5):
        writer.write(b"x\n")  # returns at once although the sink is stuck
    assert registry.get_sample_value("dropped_total") == 3  # pending cap 3: "1" + 2 accepted
    sink.release.set()
    writer.close()
    assert sink.data.startswith(b"1\n")


def test_unwritable_path_drops_and_counts(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    dropped = Counter("dropped", "d", registry=registry)
    writer = RequestLogWriter(str(tmp_path / "missing-dir" / "x.log"), dropped=dropped)
    writer.write(b"a\n")
    writer.close()
    assert registry.get_sample_value("dropped_total") == 1
