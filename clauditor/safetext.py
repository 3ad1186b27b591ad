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
