"""Serve the Responses API over an upstream that speaks only Chat Completions.

The public face of the ``responses`` -> ``chat_completions`` translator; the work is split by
direction into ``responses_chatcompletions_{input,request,response,stream,state}``. Everything
here is pure (no aiohttp, no I/O): the upstream executor calls :func:`translate_request` before
sending, then :func:`translate_response` or a :class:`ChatStreamTranslator` on the way back.
"""

from .responses_chatcompletions_input import UntranslatableError, input_messages
from .responses_chatcompletions_request import translate_request
from .responses_chatcompletions_response import (
    map_usage,
    output_text,
    translate_response,
)
from .responses_chatcompletions_state import conversation_messages, stored_input_items
from .responses_chatcompletions_stream import ChatStreamTranslator

__all__ = [
    "ChatStreamTranslator",
    "UntranslatableError",
    "conversation_messages",
    "input_messages",
    "map_usage",
    "output_text",
    "stored_input_items",
    "translate_request",
    "translate_response",
]
