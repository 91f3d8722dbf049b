"""A billed event that ends outside any client request: a background response reaching its end."""

from __future__ import annotations

from dataclasses import dataclass

from ..recording import RequestRecord, Usage


@dataclass(slots=True)
class BilledEvent:
    request_id: str
    """The request that created the response (its log line carries the same id)."""
    response_id: str
    """The gateway's id of the response, as the client knows it."""
    operation: str
    model: str | None
    deployment: str | None
    key_name: str | None
    end_user: str | None
    usage: Usage | None
    """What the upstream reported at the end; None when the follow-up gave up (deadline)."""
    status: str
    """Terminal status: completed, failed, cancelled, incomplete; or expired (deadline)."""
    recorded_by: str
    """Who saw the end first: create (the create's own answer), poll (a client's retrieve or cancel),
    follow_up (this gateway's follow-up)."""
    created_wall_time: float = 0.0

    def as_record(self, now: float, wall_time: float) -> RequestRecord:
        """A record for the request log line of this event (no request of its own, so no duration)."""
        return RequestRecord(
            request_id=self.request_id, started_at=now, wall_time=wall_time, method="-", route="background",
            operation=self.operation, key_name=self.key_name, end_user=self.end_user, requested_model=self.model,
            model=self.model, deployment=self.deployment, status=200, response_id=self.response_id,
            error_type=None if self.status == "completed" else f"background_{self.status}",
        )
