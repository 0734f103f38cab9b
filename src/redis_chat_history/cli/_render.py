"""Message records as people read them: a coloured role, the text, tool calls as
``name(args)``, tool results with their call id, and multimodal parts summarised
(``[image image/png 12.0 KB]``) instead of pages of base64.

Records are LangChain's ``message_to_dict`` dicts (``{"type": ..., "data": {...}}``) as
both upstream packages and this library store them, including chunks and the legacy
``additional_kwargs.tool_calls`` / ``function_call`` forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from ..codec import loads
from ._output import human_bytes

__all__ = ["message_text", "render_message", "role_of", "visible"]

_ROLES: dict[str, tuple[str, str]] = {
    "human": ("user", "bold green"),
    "ai": ("assistant", "bold cyan"),
    "system": ("system", "bold magenta"),
    "tool": ("tool", "bold yellow"),
    "function": ("function", "bold yellow"),
    "chat": ("chat", "bold blue"),
}
_MAX_ARGS = 300
_MAX_URL = 60

# What a terminal would act on instead of showing: C0 controls but tab and newline (as
# their Control Pictures, ␛ for ESC), DEL (␡), C1 controls and bidi overrides (U+FFFD),
# and lone surrogates, which cannot even be written out (U+FFFD). One character each, so
# styled spans keep their places.
_VISIBLE = {code: 0x2400 + code for code in range(0x20) if code not in (0x09, 0x0A)}
_VISIBLE[0x7F] = 0x2421
_VISIBLE.update({code: 0xFFFD for code in range(0x80, 0xA0)})
_VISIBLE.update({code: 0xFFFD for code in (0x2028, 0x2029, *range(0x202A, 0x202F))})
_VISIBLE.update({code: 0xFFFD for code in range(0x2066, 0x206A)})
_SURROGATE = re.compile("[\ud800-\udfff]")


def visible(text: str) -> str:
    """``text`` safe to print to a terminal: control characters and escape sequences shown
    as symbols (``\x1b[2K`` -> ``␛[2K``) instead of acted on."""
    return _SURROGATE.sub("\ufffd", text.translate(_VISIBLE))


def _base_type(kind: str) -> str:
    """``AIMessageChunk`` -> ``ai``; plain tags are returned as they are."""
    if kind.endswith("MessageChunk"):
        stem = kind[: -len("MessageChunk")].lower()
        return "human" if stem == "human" else stem
    return kind


def role_of(record: Mapping[str, Any]) -> str:
    """The role shown for a record: user, assistant, system, tool, function or a chat role."""
    kind = _base_type(str(record.get("type", "?")))
    if kind == "chat":
        return str(record.get("data", {}).get("role") or "chat")
    return _ROLES.get(kind, (kind, ""))[0]


def _style_of(record: Mapping[str, Any]) -> str:
    return _ROLES.get(_base_type(str(record.get("type", ""))), ("", "bold"))[1]


def _b64_size(data: str) -> int:
    data = data.strip()
    return max(0, len(data) * 3 // 4 - data[-2:].count("="))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _data_url_summary(kind: str, url: str) -> str:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        mime = header[5:].split(";")[0] or "data"
        size = _b64_size(payload) if ";base64" in header else len(payload)
        return f"[{kind} {mime} {human_bytes(size)}]"
    return f"[{kind} {_shorten(url, _MAX_URL)}]"


def _part_summary(part: Mapping[str, Any]) -> str:
    """A one-line stand-in for a non-text content part."""
    kind = str(part.get("type", "part"))
    label = kind.replace("_url", "").replace("input_", "")
    if kind in ("image_url", "audio_url", "video_url", "file_url"):
        value = part.get(kind)
        url = value.get("url") if isinstance(value, Mapping) else value
        return _data_url_summary(label, str(url or ""))
    if kind == "input_audio" and isinstance(part.get("input_audio"), Mapping):
        audio = part["input_audio"]
        size = human_bytes(_b64_size(str(audio.get("data", ""))))
        return f"[audio {audio.get('format', '')} {size}]".replace("  ", " ")
    if kind in ("image", "audio", "video", "file", "document"):
        mime = part.get("mime_type") or part.get("media_type") or ""
        source = part.get("source") if isinstance(part.get("source"), Mapping) else {}
        data = part.get("base64") or part.get("data") or (source or {}).get("data")
        name = part.get("filename") or (part.get("extras") or {}).get("filename") or ""
        pieces = [kind, str(name), str(mime or (source or {}).get("media_type") or "")]
        if isinstance(data, str) and data:
            pieces.append(human_bytes(_b64_size(data)))
        elif part.get("url"):
            pieces.append(_shorten(str(part["url"]), _MAX_URL))
        elif part.get("file_id") or part.get("id"):
            pieces.append(f"id={part.get('file_id') or part.get('id')}")
        return "[" + " ".join(piece for piece in pieces if piece) + "]"
    if kind == "tool_use":
        return f"[tool use] {_call_text(str(part.get('name', '?')), part.get('input'))}"
    if kind in ("thinking", "reasoning"):
        thought = str(part.get(kind) or part.get("reasoning") or part.get("text") or "")
        return f"[{kind}] {_shorten(thought, 80)}" if thought else f"[{kind}]"
    return f"[{kind} part]"


def _content_lines(content: Any) -> list[tuple[str, bool]]:
    """The content as (text, is_summary) lines: text verbatim, other parts summarised."""
    if isinstance(content, str):
        return [(content, False)] if content else []
    if not isinstance(content, list):
        return [(json.dumps(content, ensure_ascii=False), True)] if content is not None else []
    lines: list[tuple[str, bool]] = []
    for part in content:
        if isinstance(part, str):
            lines.append((part, False))
        elif isinstance(part, Mapping) and part.get("type") == "text":
            lines.append((str(part.get("text", "")), False))
        elif isinstance(part, Mapping):
            lines.append((_part_summary(part), True))
        else:
            lines.append((json.dumps(part, ensure_ascii=False, default=str), True))
    return lines


def _args_text(args: Any) -> str:
    if isinstance(args, str):  # legacy: arguments as a JSON string
        try:
            args = loads(args)
        except (ValueError, RecursionError):
            return _shorten(args, _MAX_ARGS)
    if isinstance(args, Mapping):
        text = ", ".join(
            f"{name}={json.dumps(value, ensure_ascii=False, default=str)}"
            for name, value in args.items()
        )
    elif args is None:
        text = ""
    else:
        text = json.dumps(args, ensure_ascii=False, default=str)
    return _shorten(text, _MAX_ARGS)


def _call_text(name: str, args: Any) -> str:
    return f"{name}({_args_text(args)})"


def _tool_calls(data: Mapping[str, Any]) -> Iterator[tuple[str, str | None, bool]]:
    """(``name(args)``, call id, invalid?) for every tool call a message makes."""
    calls = data.get("tool_calls") or []
    for call in calls:
        if isinstance(call, Mapping):
            yield _call_text(str(call.get("name", "?")), call.get("args")), call.get("id"), False
    for call in data.get("invalid_tool_calls") or []:
        if isinstance(call, Mapping):
            yield _call_text(str(call.get("name", "?")), call.get("args")), call.get("id"), True
    kwargs = data.get("additional_kwargs") or {}
    if not calls and isinstance(kwargs, Mapping):
        for call in kwargs.get("tool_calls") or []:  # OpenAI format, before tool_calls existed
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            if isinstance(function, Mapping):
                text = _call_text(str(function.get("name", "?")), function.get("arguments"))
                yield text, call.get("id"), False
        function_call = kwargs.get("function_call")
        if isinstance(function_call, Mapping):
            text = _call_text(str(function_call.get("name", "?")), function_call.get("arguments"))
            yield text, None, False


def message_text(record: Mapping[str, Any]) -> str:
    """The searchable text of a record: its text content, part summaries and tool calls."""
    data = record.get("data") if isinstance(record.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    lines = [text for text, _summary in _content_lines(data.get("content"))]
    lines.extend(call for call, _id, _invalid in _tool_calls(data))
    return "\n".join(lines)


def render_message(record: Mapping[str, Any], position: int | None = None) -> RenderableType:
    """A header (position, coloured role, name, tool call id) and the indented body."""
    data = record.get("data") if isinstance(record.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    kind = str(record.get("type", "?"))
    header = Text()
    if position is not None:
        header.append(f"[{position}] ", style="dim")
    header.append(role_of(record), style=_style_of(record))
    if data.get("name"):
        header.append(f" ({data['name']})", style="dim")
    if kind.endswith("Chunk"):
        header.append(" (chunk)", style="dim")
    if _base_type(kind) == "tool":
        header.append(f" ← {data.get('tool_call_id', '?')}", style="yellow")
        if data.get("status") == "error":
            header.append(" error", style="bold red")
    body = Text()
    for text, summary in _content_lines(data.get("content")):
        if body:
            body.append("\n")
        body.append(text, style="italic dim" if summary else "")
    for call, call_id, invalid in _tool_calls(data):
        if body:
            body.append("\n")
        body.append("→ ", style="yellow")
        body.append(call, style="red" if invalid else "yellow")
        if call_id:
            body.append(f"  [{call_id}]", style="dim")
        if invalid:
            body.append("  (invalid)", style="red")
    if not body:
        body.append("(empty)", style="dim")
    header.plain, body.plain = visible(header.plain), visible(body.plain)
    return Group(header, Padding(body, (0, 0, 0, 4), expand=False))
