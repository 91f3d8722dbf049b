"""What one client WebSocket remembers to continue ``store: false`` responses served over HTTP.

In WebSocket mode a client continues a ``store: false`` response by its id and sends only the new
input: the server keeps the socket's last response in memory. An upstream that speaks WebSocket
mode does that itself (the lane's own upstream socket). Every other deployment (HTTP Responses,
chat bridge, mock) stored nothing, so the gateway keeps, per lane, the last such response's whole
context (the input it was made from plus its output items) and sends that as the next turn's
input, without ``previous_response_id``. Bounded: one entry per lane, at most ``limit`` bytes in
all; a turn that fails forgets the response it continued (as OpenAI evicts it), so a client never
continues from a state it cannot know.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Remembered:
    deployment: str
    """The deployment that served it (the continuation is sent there: its encrypted items are valid there)."""
    context: bytes
    """JSON array: the input items it was made from, then its output items."""
    lane: str


def as_items(value: Any) -> list[Any]:
    """A create's ``input`` as a list of items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return value
    return [value]


class SocketMemory:
    __slots__ = ("_by_id", "_by_lane", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_id: OrderedDict[str, Remembered] = OrderedDict()
        self._by_lane: dict[str, str] = {}
        self._size = 0

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def size(self) -> int:
        return self._size

    def get(self, response_id: object) -> Remembered | None:
        return self._by_id.get(response_id) if isinstance(response_id, str) else None

    def remember(self, lane: str, response_id: str, deployment: str, input_items: list[Any], output: Any) -> None:
        """Keep a finished turn as its lane's last response (forgetting the lane's previous one)."""
        previous = self._by_lane.pop(lane, None)
        if previous is not None:
            self.forget(previous)
        context = orjson.dumps([*input_items, *(output if isinstance(output, list) else [])])
        if len(context) > self.limit:
            return  # too large to keep: continuing it answers previous_response_not_found
        self._by_id[response_id] = Remembered(deployment, context, lane)
        self._by_lane[lane] = response_id
        self._size += len(context)
        while self._size > self.limit:  # bounded: each pass removes one entry
            _, oldest = self._by_id.popitem(last=False)
            self._size -= len(oldest.context)
            self._by_lane.pop(oldest.lane, None)

    def forget(self, response_id: str) -> None:
        entry = self._by_id.pop(response_id, None)
        if entry is not None:
            self._size -= len(entry.context)
            if self._by_lane.get(entry.lane) == response_id:
                del self._by_lane[entry.lane]
