"""Responses ``tools`` -> Chat Completions ``tools``: functions, flattened namespaces, unsupported tools.

A chat upstream can only call functions. Two kinds of Responses tools are more than that:

* ``namespace`` tools group function tools under a name (Codex sends its MCP servers' tools this
  way). They are flattened into function tools named ``<namespace>__<name>``; the model's calls
  are mapped back to ``name`` + ``namespace`` on the way out (:func:`namespaced_names`), and
  replayed ``function_call`` items with a namespace are flattened the same way on the way in.
* Tools that run inside OpenAI (``web_search``, ``file_search``, ...) or that take free-form input
  (``custom``) have no chat equivalent. They are refused (400 naming the tool) unless the
  deployment says to drop them (``translation.unsupportedTools: drop``): then the model simply
  does not see them, which is what a client that offers them "just in case" (Codex offers
  ``web_search``) wants.

Pure; see docs/translation.md.
"""

from __future__ import annotations

from typing import Any

from .responses_chatcompletions_input import JsonDict, UntranslatableError, flat_name

_FUNCTION_TOOL_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})


def chat_tools(tools: Any, *, drop_unsupported: bool = False, dropped: list[str] | None = None) -> list[JsonDict]:
    """The chat ``tools`` for a Responses ``tools`` list.

    Tools a chat upstream cannot run raise :class:`UntranslatableError`, or are left out (and
    their types appended to ``dropped``) when ``drop_unsupported``.
    """
    if not isinstance(tools, list):
        raise UntranslatableError("tools", "tools must be a list.")
    out: list[JsonDict] = []
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            _add(out, seen, _function(tool, path, None), path)
        elif kind == "namespace":
            _add_namespace(out, seen, tool, path, drop_unsupported, dropped)
        elif drop_unsupported:
            if dropped is not None:
                dropped.append(f"tools[{index}] ({kind})")
        else:
            raise UntranslatableError(
                f"{path}.type",
                f"Tool type {kind!r} cannot run on a chat-completions upstream, which can only call "
                "functions (a deployment may drop such tools: translation.unsupportedTools: drop).",
            )
    return out


def _add_namespace(out: list[JsonDict], seen: set[str], tool: JsonDict, path: str, drop_unsupported: bool,
                   dropped: list[str] | None) -> None:
    namespace = tool.get("name")
    if not isinstance(namespace, str) or not namespace:
        raise UntranslatableError(f"{path}.name", "Namespace tools need a name.")
    members = tool.get("tools")
    if not isinstance(members, list):
        raise UntranslatableError(f"{path}.tools", "Namespace tools need a list of tools.")
    prefix = str(tool.get("description") or "").strip()
    for index, member in enumerate(members):
        member_path = f"{path}.tools[{index}]"
        kind = member.get("type") if isinstance(member, dict) else None
        if kind != "function":
            if drop_unsupported:
                if dropped is not None:
                    dropped.append(f"{member_path} ({kind})")
                continue
            raise UntranslatableError(f"{member_path}.type",
                                      f"Tool type {kind!r} cannot run on a chat-completions upstream.")
        function = _function(member, member_path, namespace)
        if prefix:  # the namespace's description is what the model would have seen for the group
            own = function["function"].get("description")
            function["function"]["description"] = f"{prefix}\n\n{own}" if own else prefix
        _add(out, seen, function, member_path)


def _add(out: list[JsonDict], seen: set[str], function: JsonDict, path: str) -> None:
    name = function["function"]["name"]
    if name in seen:
        raise UntranslatableError(f"{path}.name", f"Two tools would both be called {name!r} on a chat upstream.")
    seen.add(name)
    out.append(function)


def _function(tool: JsonDict, path: str, namespace: str | None) -> JsonDict:
    for key, value in tool.items():
        if key not in _FUNCTION_TOOL_KEYS and value not in (None, False):
            raise UntranslatableError(f"{path}.{key}", f"Function tool option '{key}' has no chat equivalent.")
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise UntranslatableError(f"{path}.name", "Function tools need a name.")
    function: JsonDict = {"name": flat_name(namespace, name)}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def namespaced_names(tools: Any) -> dict[str, tuple[str, str]]:
    """Flat chat function name -> (namespace, name) for the namespace tools of a request."""
    names: dict[str, tuple[str, str]] = {}
    if not isinstance(tools, list):
        return names
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "namespace":
            continue
        namespace = tool.get("name")
        for member in tool.get("tools") or []:
            if isinstance(namespace, str) and isinstance(member, dict) and isinstance(member.get("name"), str):
                names[flat_name(namespace, member["name"])] = (namespace, member["name"])
    return names
