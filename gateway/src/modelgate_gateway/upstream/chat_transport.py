"""Serve the Responses API from a deployment that speaks only Chat Completions.

The transport translates the request, calls ``/chat/completions``, and hands the executor a
reply that already speaks Responses: JSON for plain calls, the full event stream for streams
(translated chunk by chunk as it arrives). Conversation state for ``previous_response_id``,
retrieve, delete and input_items lives in the shared Redis store when one is configured; see
docs/translation.md for why there is no in-process fallback.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from ..config import Provider
from ..errors import GatewayError, InvalidRequest
from ..http1 import Http1Client, Reply, UpstreamProtocolError
from ..observability.estimating import estimate_chat_tokens
from ..runtime import DeploymentRuntime
from ..state import StateStoreError, StoredResponse
from ..state.conversations import Conversations
from ..state.holder import StoreHolder
from . import conversations_api
from .translation.responses_chatcompletions import (
    ChatStreamTranslator,
    UntranslatableError,
    conversation_messages,
    input_messages,
    stored_input_items,
    translate_request,
    translate_response,
)
from .translation.responses_chatcompletions_compact import COMPACTION_PROMPT, compacted_response, user_items
from .transport import NOT_STREAMABLE, MemoryReply, UpstreamReply, input_items_page, json_error

log = logging.getLogger("modelgate.gateway.chat")
_MAX_LINE_BYTES = 8 * 1024 * 1024  # one SSE line; bigger means a broken upstream
_OPENAI_PROVIDERS = frozenset({Provider.OPENAI, Provider.AZURE_OPENAI})


class Untranslatable(InvalidRequest):
    """The request uses something a chat-completions upstream cannot do (400, names the field)."""

    code = "unsupported_for_deployment"


class StateUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "state_store_unavailable"


def _unavailable(exc: StateStoreError) -> StateUnavailable:
    # The store's own message names hosts and ports: log it, tell the client only what failed.
    log.warning("conversation state store failed: %s", exc)
    return StateUnavailable("Conversation state is temporarily unavailable; retry later.")


def _note_dropped(deployment: str, dropped: list[str], request_id: str) -> None:
    """Name what the translation left out: at INFO the first time per deployment and field (so the
    log says it once, not per request), at DEBUG after that."""
    fresh = [name for name in dropped if (deployment, name) not in _NOTED]
    if fresh and len(_NOTED) < _MAX_NOTED:
        _NOTED.update((deployment, name) for name in fresh)
        log.info(
            "deployment %s (chat completions) leaves out %s: they do not change what the model "
            "produces or it cannot run them; see docs/translation.md (request %s)",
            deployment,
            ", ".join(fresh),
            request_id,
        )
    else:
        log.debug("deployment %s leaves out %s (request %s)", deployment, ", ".join(dropped), request_id)


_NOTED: set[tuple[str, str]] = set()
_MAX_NOTED = 1024  # bounded: after this many (deployment, field) pairs, only DEBUG


class ChatTransport:
    def __init__(self, client: Http1Client, stores: StoreHolder) -> None:
        self._client = client
        self._stores = stores

    async def open(
        self,
        dep: DeploymentRuntime,
        method: str,
        path: str,
        *,
        payload: dict[str, Any] | None,
        raw: bytes | None,
        query: Mapping[str, str] | None,
        request_id: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> UpstreamReply:
        """``headers`` (OpenAI-Beta, Idempotency-Key) concern the Responses API: not passed to a chat API."""
        if method == "POST" and path == "/responses" and payload is not None:
            return await self._create(dep, payload, request_id)
        if path.startswith("/conversations"):
            return await self._conversations_api(dep, method, path, payload, query or {})
        if method == "POST" and path == "/responses/input_tokens" and payload is not None:
            return await self._count(dep, payload)
        if method == "POST" and path == "/responses/compact" and payload is not None:
            return await self._compact(dep, payload, request_id)
        return await self._follow_up(method, path, query or {})

    def _conversations(self, dep: DeploymentRuntime, param: str | None) -> Conversations:
        store = self._stores.store
        if store is None:
            raise Untranslatable(
                f"Conversations on deployment {dep.name} (Chat Completions) need the gateway's "
                "state store (spec.state.redisUrl), which is not configured.",
                param=param,
            )
        return store.conversations()

    async def _conversations_api(
        self, dep: DeploymentRuntime, method: str, path: str, payload: dict[str, Any] | None, query: Mapping[str, str]
    ) -> UpstreamReply:
        conversations = self._conversations(dep, None)
        try:
            return await conversations_api.serve(conversations, self._stores.ttl_seconds, method, path, payload, query)
        except StateStoreError as exc:
            raise _unavailable(exc) from None

    async def _history(self, dep: DeploymentRuntime, payload: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The chat messages before this turn: the conversation's items, or up to the previous response."""
        if conversations_api.conversation_id(payload) is not None:
            try:
                items = await conversations_api.history(self._conversations(dep, "conversation"), payload) or []
            except StateStoreError as exc:
                raise _unavailable(exc) from None
            try:
                return input_messages(items)
            except UntranslatableError as exc:
                raise Untranslatable(f"{exc.message} (an item of the conversation)", param="conversation") from None
        previous = payload.get("previous_response_id")
        store = self._stores.store
        if previous is None or store is None:
            return None
        try:
            stored = await store.get(str(previous))
        except StateStoreError as exc:
            raise _unavailable(exc) from None
        if stored is None:
            raise InvalidRequest(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return stored.messages

    async def _create(self, dep: DeploymentRuntime, payload: dict[str, Any], request_id: str) -> UpstreamReply:
        history = await self._history(dep, payload)
        dropped: list[str] = []
        chat = self._translate(dep, payload, history, dropped)
        if dropped:
            _note_dropped(dep.name, dropped, request_id)
        resp = await self._send(dep, chat, request_id)
        if resp.status >= 400:
            return resp
        return ChatReply(resp, dep, payload, history, self._stores)

    def _translate(
        self,
        dep: DeploymentRuntime,
        body: dict[str, Any],
        history: list[dict[str, Any]] | None,
        dropped: list[str] | None = None,
    ) -> dict[str, Any]:
        try:
            return translate_request(
                body,
                dep.model,
                history,
                drop_unsupported_tools=dep.drop_unsupported_tools,
                dropped=dropped,
                openai_fields=dep.provider in _OPENAI_PROVIDERS,
            )
        except UntranslatableError as exc:
            raise Untranslatable(
                f"{exc.message} (deployment {dep.name} speaks Chat Completions)", param=exc.param
            ) from None

    async def _compact(self, dep: DeploymentRuntime, payload: dict[str, Any], request_id: str) -> UpstreamReply:
        """The model summarises the conversation; the reply packs it as OpenAI's compaction does."""
        history = await self._history(dep, payload)
        body = {k: payload[k] for k in ("input", "instructions", "previous_response_id") if payload.get(k) is not None}
        chat = self._translate(dep, body, history)
        kept = user_items(chat["messages"])
        chat["messages"].append({"role": "user", "content": COMPACTION_PROMPT})
        resp = await self._send(dep, chat, request_id)
        return resp if resp.status >= 400 else CompactReply(resp, kept)

    async def _send(self, dep: DeploymentRuntime, chat: dict[str, Any], request_id: str) -> Reply:
        assert dep.endpoint is not None
        return await self._client.send(
            dep.endpoint,
            "POST",
            "/chat/completions",
            body=orjson.dumps(chat),
            content_type="application/json",
            extra_headers=(("X-Request-Id", request_id),),
            pool_key=dep.pool_key,
        )

    async def _count(self, dep: DeploymentRuntime, payload: dict[str, Any]) -> UpstreamReply:
        """An estimate (marked ``"estimated": true``): chat APIs have no endpoint that counts tokens."""
        history = await self._history(dep, payload)
        body = {k: v for k, v in payload.items() if k not in ("stream", "conversation")}
        chat = self._translate(dep, body, history)
        count = estimate_chat_tokens(chat)
        return MemoryReply(
            200, orjson.dumps({"object": "response.input_tokens", "input_tokens": count, "estimated": True})
        )

    async def _follow_up(self, method: str, path: str, query: Mapping[str, str]) -> UpstreamReply:
        parts = path.strip("/").split("/")
        store = self._stores.store
        if store is None:
            return json_error(
                404,
                "Responses of chat-completions deployments are stored only when the gateway "
                "has a state store (spec.state.redisUrl).",
                "not_found",
            )
        try:
            stored = await store.get(parts[1])
            if stored is None:
                return json_error(404, f"No response found with id '{parts[1]}'.", "not_found")
            if method == "DELETE":
                await store.delete(parts[1])
                return MemoryReply(200, orjson.dumps({"id": parts[1], "object": "response", "deleted": True}))
        except StateStoreError as exc:
            raise _unavailable(exc) from None
        if method == "GET" and parts[2:] == ["input_items"]:
            return MemoryReply(200, orjson.dumps(input_items_page(stored.input_items, query)))
        if method == "GET" and query.get("stream") == "true":
            return json_error(400, NOT_STREAMABLE, param="stream")
        if method == "POST" and parts[2:] == ["cancel"]:
            return json_error(400, "Only responses created with background=true can be cancelled.")
        return MemoryReply(200, orjson.dumps(stored.response))


class CompactReply:
    """A chat completion carrying the model's summary, read as a ``response.compaction``."""

    def __init__(self, resp: Reply, kept: list[dict[str, Any]]) -> None:
        self._resp = resp
        self._kept = kept
        self.status = 200
        self.headers: Mapping[str, str] = {"Content-Type": "application/json"}

    async def read(self) -> bytes:
        try:
            completion = orjson.loads(await self._resp.read())
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("chat upstream sent a body that is not JSON") from None
        return orjson.dumps(
            compacted_response(completion, self._kept, "resp_" + os.urandom(16).hex(), int(time.time()))
        )

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError("compaction answers are never streamed")

    def close(self) -> None:
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class ChatReply:
    """A successful chat-completions reply, read or streamed as Responses."""

    def __init__(
        self,
        resp: Reply,
        dep: DeploymentRuntime,
        payload: dict[str, Any],
        history: list[dict[str, Any]] | None,
        stores: StoreHolder,
    ) -> None:
        self._resp = resp
        self._dep = dep
        self._payload = payload
        self._history = history
        self._stores = stores
        self._id = "resp_" + os.urandom(16).hex()
        self._created = int(time.time())
        self.status = 200
        self._frames: AsyncIterator[bytes] | None = None
        stream = payload.get("stream") is True
        self.headers: Mapping[str, str] = {"Content-Type": "text/event-stream" if stream else "application/json"}

    async def read(self) -> bytes:
        body = await self._resp.read()
        try:
            chat = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("chat upstream sent a body that is not JSON") from None
        response = translate_response(
            chat,
            response_id=self._id,
            model=self._dep.model,
            created_at=self._created,
            request=self._payload,
            completed_at=int(time.time()),
        )
        await self._save(response)
        return orjson.dumps(response)

    def chunks(self) -> AsyncIterator[bytes]:
        if self._frames is None:
            self._frames = self._translate()
        return self._frames

    async def _translate(self) -> AsyncIterator[bytes]:
        translator = ChatStreamTranslator(
            response_id=self._id, model=self._dep.model, created_at=self._created, request=self._payload
        )
        # The opening events are held back until the upstream produced something, so a chat
        # upstream that dies right after its headers can still be failed over.
        pending = translator.start()
        buffer = b""
        done = False
        async for chunk in self._resp.chunks():
            buffer += chunk
            if len(buffer) > _MAX_LINE_BYTES:
                raise UpstreamProtocolError("chat upstream sent an oversized stream line")
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            out: list[bytes] = []
            for line in lines:
                data = line.strip()
                if not data.startswith(b"data:"):
                    continue  # blank lines, comments (":"), event names
                data = data[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamProtocolError("chat upstream sent an event that is not JSON") from None
                out.append(translator.feed(parsed))
                if translator.closed:
                    break
            if out:
                yield pending + b"".join(out)
                pending = b""
            if done or translator.closed:
                break
        if translator.closed:
            return
        if not done and translator.finish_reason is None:
            raise UpstreamProtocolError("chat upstream ended the stream early")
        frames = translator.finish()
        await self._save(translator.response)
        yield pending + frames

    async def _save(self, response: dict[str, Any]) -> None:
        store = self._stores.store
        if store is None:
            return
        try:  # a conversation gets the turn whatever ``store`` says: the conversation is the storage
            await conversations_api.record_turn(
                store.conversations(), self._payload, response, self._stores.ttl_seconds
            )
        except StateStoreError as exc:
            log.warning(
                "could not add response %s to its conversation (deployment %s): %s", self._id, self._dep.name, exc
            )
        if self._payload.get("store") is False:
            return
        stored = StoredResponse(
            response=response,
            messages=conversation_messages(self._payload, self._history, response),
            input_items=stored_input_items(self._payload),
            created_at=self._created,
        )
        try:
            await store.put(self._id, stored, self._stores.ttl_seconds)
        except StateStoreError as exc:  # the answer still reaches the client; only follow-ups lose
            log.warning("could not store response %s of deployment %s: %s", self._id, self._dep.name, exc)

    def close(self) -> None:
        self._resp.close()

    def release(self) -> None:
        self._resp.release()
