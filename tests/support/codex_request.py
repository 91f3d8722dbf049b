"""A scripted request shaped like the ones Codex CLI sends to ``POST /v1/responses``.

Codex sends no ``previous_response_id``: every turn replays the whole conversation in ``input``
(encrypted reasoning included) with ``store: false``, ``include: ["reasoning.encrypted_content"]``,
a ``prompt_cache_key`` (its conversation id), ``client_metadata``, and nine or so tools: functions
(shell, apply_patch, update_plan, ...), one ``namespace`` tool per MCP server, and ``web_search``.
The instructions are long (about 40 KB), which is what makes the body about 42 KB.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "mcp_docs"
NAMESPACED_TOOL = "search_docs"
ENCRYPTED = "gAAAAB" + "x" * 600  # an organisation-bound blob only its producer can decrypt


def _function(name: str, description: str, **properties: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, "description": description, "strict": False,
            "parameters": {"type": "object", "properties": properties, "required": list(properties),
                           "additionalProperties": False}}


def tools() -> list[dict[str, Any]]:
    """Nine tools: seven functions, one namespace (two functions), web_search."""
    text = {"type": "string"}
    return [
        _function("shell", "Runs a shell command and returns its output.", command={"type": "array", "items": text},
                  workdir=text),
        _function("apply_patch", "Applies a patch to files in the workspace.", input=text),
        _function("update_plan", "Updates the task plan.", plan={"type": "array", "items": text}),
        _function("view_image", "Attaches a local image to the conversation.", path=text),
        _function("list_mcp_resources", "Lists resources of MCP servers.", server=text),
        _function("read_mcp_resource", "Reads one MCP resource.", server=text, uri=text),
        _function("write_stdin", "Writes to a running command's stdin.", session_id=text, chars=text),
        {"type": "namespace", "name": NAMESPACE, "description": "Tools of the docs MCP server.",
         "tools": [_function(NAMESPACED_TOOL, "Searches the documentation.", query=text),
                   _function("fetch_doc", "Fetches one document.", url=text)]},
        {"type": "web_search"},
    ]


def codex_body(model: str, turns: list[dict[str, Any]], *, session: str = "019a-session-0001",
               stream: bool = True) -> dict[str, Any]:
    """The body of one Codex turn: ``turns`` are the conversation's items so far (user message first)."""
    instructions = "You are Codex, a coding agent. " + ("Follow the repository's conventions. " * 1100)
    return {
        "model": model,
        "instructions": instructions,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions/>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context/>"}]},
            *turns,
        ],
        "tools": tools(),
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": stream,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": session,
        "text": {"verbosity": "medium"},
        "client_metadata": {"originator": "codex_exec", "version": "0.171.0"},
    }


def user_turn(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def reasoning_item() -> dict[str, Any]:
    """A reasoning item as Codex replays it: a summary and the encrypted content."""
    return {"type": "reasoning", "id": "rs_0001", "summary": [{"type": "summary_text", "text": "Look it up."}],
            "encrypted_content": ENCRYPTED}


def tool_round(call: dict[str, Any], output: str) -> list[dict[str, Any]]:
    """The items Codex appends after running a tool: the model's call as it came, then the output."""
    replayed = {key: call[key] for key in ("type", "call_id", "name", "arguments") if key in call}
    if call.get("namespace"):
        replayed["namespace"] = call["namespace"]
    return [reasoning_item(), replayed, {"type": "function_call_output", "call_id": call["call_id"], "output": output}]
