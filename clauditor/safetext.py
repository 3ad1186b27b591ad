"""Text that Python can hold but UTF-8 cannot: lone UTF-16 surrogates.

A request body may carry `"\\ud800"`, valid JSON that `json.loads` turns into a str with a
lone surrogate. Such a str cannot be encoded to UTF-8, so SQLite, a JSON response or an
SSE frame would raise on it. The parsers keep the text as it came; the edges that encode
(the store writer, the API's responses, the /watch frames) call these helpers, which
replace each lone surrogate with U+FFFD and leave every other character, a surrogate
pair written as two code points included (it becomes the character it encodes).

The fast path is free: `utf8_json` first encodes as usual and only walks the value when
that fails, so clean text (nearly always) pays nothing extra.
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def scrub_text(text: str) -> str:
    """text with each lone surrogate replaced by U+FFFD (a pair becomes its character)."""
    if not has_surrogates(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def scrub(value: Any) -> Any:
    """value with every str in it scrubbed, recursively through dicts, lists and tuples
    (dict keys too); anything else is returned as it is."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub(v) for v in value)
    return value


def utf8_json(value: Any, **dumps: Any) -> bytes:
    """json.dumps(value, ensure_ascii=False) as UTF-8, lone surrogates as U+FFFD."""
    try:
        return json.dumps(value, ensure_ascii=False, **dumps).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(scrub(value), ensure_ascii=False, **dumps).encode("utf-8")


# -- text bound for a terminal ---------------------------------------------------------
# Prompts, summaries, model ids, tool summaries and session ids come from the wire: a
# hostile or broken one may carry escape sequences that recolour, move the cursor, clear
# the screen, retitle the window or (OSC 52) write the clipboard of whoever runs
# `clauditor recall` or `watch`. Whatever clauditor prints to a terminal passes through
# terminal_text / terminal_safe at the rendering edge: whole escape sequences go, then
# every other C0 / C1 control character but tab and newline (one-line views drop those
# too). Rich's own styling is added after, so it is untouched.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: titles, clipboard, links
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape (charset, keypad, reset...)
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile("[\t\n]+")


def terminal_text(text: str, *, one_line: bool = False) -> str:
    """text without escape sequences and control characters (tab and newline are kept
    unless one_line, where each run of them becomes a space)."""
    if _CONTROLS.search(text) is None and not (one_line and _LINE_BREAKS.search(text)):
        return text  # the common case: nothing to do, no copy
    text = _CONTROLS.sub("", _ESCAPES.sub("", text))
    return _LINE_BREAKS.sub(" ", text) if one_line else text


def terminal_safe(value: Any) -> Any:
    """value with every str in it through terminal_text, recursively through dicts, lists
    and tuples (dict keys too); anything else is returned as it is."""
    if isinstance(value, str):
        return terminal_text(value)
    if isinstance(value, dict):
        return {terminal_safe(k): terminal_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [terminal_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(terminal_safe(v) for v in value)
    return value
