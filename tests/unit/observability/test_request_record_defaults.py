"""RequestRecord's written-out ``__init__`` gives every field its declared default, lists fresh per record."""

from __future__ import annotations

import dataclasses

from modelgate_gateway.observability.recording import BilledEvent, RequestRecord, Usage

_IDENTITY = ("request_id", "started_at", "wall_time", "method", "route")


def test_every_field_starts_at_its_declared_default() -> None:
    record = RequestRecord("req_1", 1.0, 2.0)
    for f in dataclasses.fields(RequestRecord):
        if f.name in _IDENTITY:
            continue
        declared = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert getattr(record, f.name) == declared, f.name  # a field missing from __init__ raises here
        assert type(getattr(record, f.name)) is type(declared), f.name


def test_identity_is_what_the_caller_gave() -> None:
    record = RequestRecord("req_1", 1.0, 2.0, method="GET", route="retrieve")
    assert (record.request_id, record.started_at, record.wall_time) == ("req_1", 1.0, 2.0)
    assert (record.method, record.route) == ("GET", "retrieve")
    assert (RequestRecord("r", 0.0, 0.0).method, RequestRecord("r", 0.0, 0.0).route) == ("POST", "create")


def test_list_fields_are_not_shared_between_records() -> None:
    first, second = RequestRecord("a", 0.0, 0.0), RequestRecord("b", 0.0, 0.0)
    for f in dataclasses.fields(RequestRecord):
        if isinstance(getattr(first, f.name), list):
            getattr(first, f.name).append(object())
            assert getattr(second, f.name) == [], f.name


def test_a_billed_event_makes_the_record_of_its_log_line() -> None:
    event = BilledEvent(
        request_id="req_9",
        response_id="resp_1",
        operation="background",
        model="gpt-4o",
        deployment="east",
        key_name="team-a",
        end_user="alice",
        usage=Usage(input_tokens=3),
        status="failed",
        recorded_by="poll",
    )
    record = event.as_record(5.0, 6.0)
    assert (record.request_id, record.started_at, record.wall_time) == ("req_9", 5.0, 6.0)
    assert (record.method, record.route, record.operation, record.status) == ("-", "background", "background", 200)
    assert (record.key_name, record.end_user, record.requested_model, record.model) == (
        "team-a",
        "alice",
        "gpt-4o",
        "gpt-4o",
    )
    assert (record.deployment, record.response_id, record.error_type) == ("east", "resp_1", "background_failed")
    assert record.attempts == [] and record.usage is None
