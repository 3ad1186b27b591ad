"""Short, display-safe text: cleaned prompts, reply summaries, content-free tool summaries."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from clauditor.claude_code import (
    AGENT_TOOLS,
    BASH_TOOL,
    FILE_TOOLS,
    SEARCH_TOOLS,
    WEB_FETCH_TOOL,
    WEB_SEARCH_TOOL,
)
from clauditor.parsing.redact import MARKER_PREFIX, redact

ELLIPSIS = "…"
# Redaction reads this much (or 4x the cap) of a long text: enough that the display cap
# falls well inside redacted text, and bounded work on a pasted megabyte.
REDACT_WINDOW = 8192

# Wrappers whose whole content is machine-made noise for a prompt view.
_DROP_TAGS = (
    "system-reminder",
    "local-command-stdout",
    "local-command-stderr",
    "local-command-caveat",
    "command-message",
    "bash-stdout",
    "bash-stderr",
    "user-prompt-submit-hook",
)
# Any other Claude Code wrapper (<command-name>, <command-args>, <bash-input>...) is
# unwrapped, keeping its content: "<command-name>/compact</command-name>" -> "/compact".
# Only hyphenated lowercase names, so user-typed <div> or <T> survive.
_WRAPPER_TAG = re.compile(r"</?[a-z]+(?:-[a-z]+)+>")

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.DOTALL | re.MULTILINE)
_CODE_LINE = re.compile(
    r"""^\s*(?:
        [{}\[\]]                                  # JSON / block punctuation
      | (?:def|class|import|from\s+\S+\s+import|function|const|let|var|return|public|private
         |package|fn|func|\#include|SELECT|INSERT)\b
      | \$\s                                      # shell prompt
      | //|/\*|\*/|<!--                           # comments
      | [\w.]+\s*[-+*/]?=\s                       # assignment
    )
    | [;{]\s*$                                    # ends like a statement or block
    | ^\s*"[^"]*"\s*:                             # "key": value
    """,
    re.VERBOSE,
)


def _fold(text: str) -> str:
    return " ".join(text.split())


def _cap(text: str, limit: int, more: bool = False) -> str:
    """At most `limit` chars, an ellipsis when something was cut (or `more` was left
    unread); a cut never splits a `[redacted:kind]` marker."""
    if limit <= 0:
        return ""
    if len(text) <= limit and not more:
        return text
    if len(text) < limit:
        return text.rstrip() + ELLIPSIS
    cut = text[: limit - 1]
    open_at = cut.rfind(MARKER_PREFIX)
    if open_at >= 0 and "]" not in cut[open_at:]:
        cut = cut[:open_at]
    return cut.rstrip() + ELLIPSIS


def _redact_cap(text: str, limit: int) -> str:
    """Secrets out, then the cap: a cut can never leave half a secret visible."""
    window = max(limit * 4, REDACT_WINDOW)
    more = len(text) > window
    # The window's own cut may split a token: redact(truncated=True) drops that word.
    return _cap(redact(text[:window], truncated=more), limit, more)


def _drop_blocks(text: str, tag: str) -> str:
    """Remove every <tag>...</tag>; linear (str.find), unlike a lazy regex on hostile text."""
    open_t, close_t = f"<{tag}>", f"</{tag}>"
    start = text.find(open_t)
    if start < 0:
        return text
    out: list[str] = []
    pos = 0
    while start >= 0:
        end = text.find(close_t, start + len(open_t))
        if end < 0:
            if tag == "system-reminder":  # never show half a reminder
                out.append(text[pos:start])
                pos = len(text)
            break
        out.append(text[pos:start])
        out.append(" ")
        pos = end + len(close_t)
        start = text.find(open_t, pos)
    out.append(text[pos:])
    return "".join(out)


def clean_prompt(text: str, limit: int = 500, *, keep_secrets: bool = False) -> str:
    """A human prompt as a person would read it: no reminders, no command noise, and
    secrets replaced by `[redacted:kind]` before the cap.

    `keep_secrets=True` is for text that is only hashed (prompt identity, subagent
    task keys), never stored or shown."""
    if not isinstance(text, str):
        return ""
    if "<" in text:
        for tag in _DROP_TAGS:
            text = _drop_blocks(text, tag)
        text = _WRAPPER_TAG.sub(" ", text)
    text = _fold(text)
    return _cap(text, limit) if keep_secrets else _redact_cap(text, limit)


def summarize_text(text: str, limit: int = 300) -> str:
    """An assistant reply in one line: prose only, no code or JSON."""
    if not isinstance(text, str):
        return ""
    # Bounded work: a summary never needs more than the start of a long reply. Secrets go
    # first, while the text still has its lines (a key block, `export X=...`).
    window = max(limit * 40, 4000)
    text = redact(text[:window], truncated=len(text) > window)
    if "```" in text or "~~~" in text:
        text = _FENCE.sub("\n", text)
    kept = [ln for ln in text.splitlines() if ln.strip() and not _CODE_LINE.search(ln)]
    return _cap(_fold(" ".join(kept)), limit)


# -- tool inputs ------------------------------------------------------------------------------

_PATH_KEYS = ("file_path", "notebook_path", "path")
BASH_HEAD = 60


def _s(v: Any) -> str:
    return _fold(v) if isinstance(v, str) else ""


def _keys(d: dict[str, Any]) -> str:
    return ", ".join(str(k) for k in list(d)[:20])


def _url_head(url: str) -> str:
    # Host and path only: query strings and fragments often carry tokens.
    try:
        u = urlsplit(url.strip())
        host = u.hostname or ""
    except ValueError:
        return ""
    return f"{host}{u.path}" if host else ""


def _summary(name: str, d: dict[str, Any]) -> str:
    if name in FILE_TOOLS:
        for key in _PATH_KEYS:
            if _s(d.get(key)):
                return _s(d.get(key))
        return ""
    if name == BASH_TOOL:
        cmd = d.get("command")
        if not isinstance(cmd, str):
            return ""
        lines = cmd.strip().splitlines()
        return _redact_cap(_fold(lines[0]) if lines else "", BASH_HEAD)
    if name in SEARCH_TOOLS:
        pattern, path = _s(d.get("pattern")), _s(d.get("path"))
        return f"{pattern} in {path}" if pattern and path else pattern or path
    if name == WEB_FETCH_TOOL:
        return _url_head(d["url"]) if isinstance(d.get("url"), str) else ""
    if name == WEB_SEARCH_TOOL:
        return _s(d.get("query"))
    if name in AGENT_TOOLS:
        desc, kind = _s(d.get("description")), _s(d.get("subagent_type"))
        return f"{kind}: {desc}" if kind and desc else kind or desc
    return _keys(d)  # mcp__server__tool and anything unknown: key names only


def tool_input_summary(name: str, tool_input: dict[str, Any] | None, limit: int = 120) -> str:
    """What a tool call is about, without values that could be file contents or secrets.

    Paths, patterns, queries and descriptions can still hold a pasted token (a query
    string, `grep ghp_...`): every summary is redacted before its cap."""
    if not isinstance(tool_input, dict) or not isinstance(name, str):
        return ""
    return _redact_cap(_summary(name, tool_input), limit)
