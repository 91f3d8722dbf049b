"""``spec.websocket``: the Responses API's WebSocket mode on ``GET /v1/responses``, and its limits."""

from __future__ import annotations

from pydantic import Field

from .documentmodel import DocumentModel


class WebSocketMode(DocumentModel):
    enabled: bool = Field(
        default=True,
        description="Accept the Responses API's WebSocket mode on GET /v1/responses. Off: the upgrade gets 426, "
        "so clients fall back to HTTP at once.",
    )
    max_frame_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest client frame (one response.create); a larger one closes the socket with 1009.",
    )
    max_turns_in_flight: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Turns running or queued on one socket, over all its lanes; one more gets an error event.",
    )
    idle_timeout_seconds: float = Field(
        default=600.0, gt=0, le=86400, description="A socket with no frame and no turn for this long is closed (1000)."
    )
    max_socket_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86400,
        description="Lifetime of a socket (OpenAI closes WebSocket mode connections after 60 minutes): then it "
        "takes no new turn (an error event, websocket_connection_limit_reached) and closes with 1001 once its turns "
        "in flight ended; clients reconnect.",
    )
    max_sockets_per_key: int | None = Field(
        default=64, ge=1, le=1_000_000, description="Open sockets per API key on one replica; one more gets 429."
    )
    max_state_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        le=1024 * 1024 * 1024,
        description="Memory one socket may hold for continuing store=false responses on deployments served over "
        "HTTP (its last response per lane); a larger state is not kept and continuing it answers "
        "previous_response_not_found.",
    )
