"""What one /v1/messages request says: session, kind of call, prompt, cache setup, retry key.

One json.loads, then only the few fields we need; messages are walked once without
copying their (possibly multi-MB) content. Hostile bodies never raise.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from clauditor.claude_code import (
    AGENT_HEADER,
    AGENT_LAUNCHED_PREFIX,
    AGENT_TOOLS,
    BILLING_PREFIX,
    COMMAND_NAME_TAG,
    COMPACT_COMMAND,
    COMPACT_PREFIX,
    CONTINUATION_PREFIX,
    HEADER_PREFIX,
    NOTIFICATION_MARKER,
    SESSION_HEADER,
    SUBAGENT_BILLING_FLAG,
    SUBAGENT_MARKER,
    TASK_NOTIFICATION_OPEN,
    TOOL_LOADED_TEXT,
    TaskNotification,
    agent_id_in,
    task_notifications,
)
from clauditor.parsing.text import clean_prompt

RequestKind = Literal["main", "subagent", "title", "compaction", "other"]
SessionSource = Literal["header", "metadata", "metadata_legacy", "derived"]

MAX_ID = 128  # ids, versions, model names: longer values are garbage, not ids
MAX_USER_ID = 4096
MAX_NAMES = 64  # body keys and header names kept for the drift check
AGENT_RESULT_SCAN = 4096  # an Agent result names its agent id near its start

_LEGACY_SESSION = re.compile(r"_session_([0-9a-f-]{36})")
_LEGACY_DEVICE = re.compile(r"^user_([0-9a-f]{64})")
# cc_version=2.1.197.7b2: the 3-hex suffix fingerprints the first prompt, not the build (it
# may be empty, or of another shape in another version: the version is the first three).
_CC_VERSION = re.compile(r"^(\d+\.\d+\.\d+)(?:\.[0-9a-z]{0,16})?$")


@dataclass(frozen=True, slots=True)
class ToolResultRef:
    tool_use_id: str
    is_error: bool
    # Results of Agent calls: the subagent's id, and whether this is only the launch
    # acknowledgement of a background run (its real end comes as a task notification).
    agent_id: str | None = None
    launched: bool = False


@dataclass(slots=True)
class ParsedRequest:
    ok: bool  # False: body not a JSON object; `error` says why
    error: str | None = None  # "not_json" | "not_object" | "empty" | "undecodable_encoding"...
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = None
    betas: tuple[str, ...] = ()
    session_id: str | None = None
    session_source: SessionSource | None = None
    device_id: str | None = None
    kind: RequestKind = "other"
    cc_version: str | None = None
    entrypoint: str | None = None
    user_agent: str | None = None
    cache_ttl_seconds: int = 300
    cache_breakpoints: int = 0
    tool_names: tuple[str, ...] = ()
    # Digest of the tool names in order: part of the prompt-cache key ("" without tools).
    tools_digest: str = ""
    tool_results: tuple[ToolResultRef, ...] = ()
    # <task-notification>s in the newest user message: background tasks that finished.
    notifications: tuple[TaskNotification, ...] = ()
    new_prompt: bool = False
    prompt: str | None = None
    message_count: int = 0
    conversation_messages: int = 0
    thinking: str | None = None
    effort: str | None = None
    context_1m: bool = False
    fingerprint: str = ""
    # Subagent requests: digests of the task prompt (the text blocks of their first user
    # message, and all of them joined), one equal to task_key(the Agent tool_use's
    # input["prompt"]), so a run can be tied to its Agent call.
    task_keys: tuple[str, ...] = ()
    agent_id: str | None = None  # x-claude-code-agent-id: the subagent run's id
    # The conversation opens with a compaction summary (the turns after a compaction).
    continued: bool = False
    # ... and says the compaction was a typed /compact (the command's echo), not automatic.
    manual_compact: bool = False
    body_keys: tuple[str, ...] = ()  # top-level keys of the body, for the drift check
    cc_headers: tuple[str, ...] = ()  # names of the x-claude-code-* headers sent
    body_bytes: int = 0


def _str(v: Any, cap: int = MAX_ID) -> str | None:
    if isinstance(v, str):
        text = v.strip()
        if text and len(text) <= cap:
            return text
    return None


def _utf8(s: str) -> bytes:
    # JSON strings may hold lone surrogates; hashing must not choke on them.
    return s.encode("utf-8", "surrogatepass")


def _texts(content: Any) -> list[str]:
    """The text of a message: a plain string, or its text blocks."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [
        b["text"]
        for b in content
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _add_betas(out: list[str], values: Any) -> None:
    for v in values:
        if isinstance(v, str):
            v = v.strip()
            if v and len(v) <= MAX_ID and v not in out:
                out.append(v)


def _from_headers(r: ParsedRequest, headers: Mapping[str, str]) -> list[str]:
    betas: list[str] = []
    beta = headers.get("anthropic-beta")
    if isinstance(beta, str):
        _add_betas(betas, beta.split(","))
    sid = _str(headers.get(SESSION_HEADER))
    if sid:
        r.session_id, r.session_source = sid, "header"
    r.agent_id = _str(headers.get(AGENT_HEADER))
    r.cc_headers = tuple(n for n in headers if n.startswith(HEADER_PREFIX))[:MAX_NAMES]
    r.user_agent = _str(headers.get("user-agent"), 512)
    return betas


def _from_metadata(r: ParsedRequest, metadata: Any) -> None:
    if not isinstance(metadata, dict):
        return
    uid = _str(metadata.get("user_id"), MAX_USER_ID)
    if uid is None:
        return
    sid = dev = None
    source: SessionSource
    if uid.startswith("{"):
        # Claude Code >= 2.x: a JSON document inside the string.
        try:
            m = json.loads(uid)
        except (ValueError, RecursionError):
            m = None
        if not isinstance(m, dict):
            return
        sid, dev, source = _str(m.get("session_id")), _str(m.get("device_id")), "metadata"
    else:
        # Older builds: user_<64 hex>_account_<uuid|empty>_session_<uuid>.
        ms = _LEGACY_SESSION.search(uid)
        md = _LEGACY_DEVICE.match(uid)
        sid = ms.group(1) if ms else None
        dev = md.group(1) if md else None
        source = "metadata_legacy"
    r.device_id = dev
    if r.session_id is None and sid:
        r.session_id, r.session_source = sid, source


def _billing(r: ParsedRequest, system_texts: list[str]) -> str | None:
    for t in system_texts:
        if t.startswith(BILLING_PREFIX):
            line = t[len(BILLING_PREFIX) : len(BILLING_PREFIX) + 512]
            for part in line.split(";"):
                key, _, value = part.strip().partition("=")
                if key == "cc_version":
                    m = _CC_VERSION.match(value)
                    r.cc_version = m.group(1) if m else _str(value)
                elif key == "cc_entrypoint":
                    r.entrypoint = _str(value)
            return line
    return None


def _result_text(block: dict[str, Any]) -> str:
    """The start of a tool_result's text content (a string or text blocks)."""
    content = block.get("content")
    if isinstance(content, str):
        return content[:AGENT_RESULT_SCAN]
    return "\n".join(_texts(content))[:AGENT_RESULT_SCAN]


def _agent_call_ids(messages: list[dict[str, Any]], newest_user: dict[str, Any]) -> set[str]:
    """Ids of the Agent tool_use blocks in the assistant message before `newest_user`."""
    ids: set[str] = set()
    for i in range(len(messages) - 1, 0, -1):
        if messages[i] is newest_user:
            before = messages[i - 1]
            if before.get("role") == "assistant":
                for b in _blocks(before.get("content")):
                    if b.get("type") == "tool_use" and b.get("name") in AGENT_TOOLS:
                        tid = _str(b.get("id"))
                        if tid:
                            ids.add(tid)
            break
    return ids


def _human_texts(texts: list[str], has_tool_results: bool) -> list[str]:
    """The text blocks of a user message that a person typed: without Claude Code's own
    (a ToolSearch's "Tool loaded.", a compaction summary, the /compact echo, a task
    notification). Reminders and command noise are cleaned away later by clean_prompt."""
    out = []
    for t in texts:
        head = t.lstrip()
        if has_tool_results and head.rstrip() == TOOL_LOADED_TEXT:
            continue
        if head.startswith(CONTINUATION_PREFIX) or COMPACT_COMMAND in t:
            continue
        if NOTIFICATION_MARKER in t or TASK_NOTIFICATION_OPEN in t:
            continue
        out.append(t)
    return out


def _cache(blocks: list[Any]) -> tuple[int, bool]:
    n, one_hour = 0, False
    for b in blocks:
        if isinstance(b, dict):
            cc = b.get("cache_control")
            if isinstance(cc, dict):
                n += 1
                if cc.get("ttl") == "1h":
                    one_hour = True
    return n, one_hour


def _first_user_key(messages: list[dict[str, Any]]) -> str | None:
    """A stable digest of the first user message (cache markers and block keys ignored)."""
    for m in messages:
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            parts = [c]
        else:
            parts = [
                b["text"] if isinstance(b.get("text"), str) else f"<{b.get('type')}>"
                for b in _blocks(c)
            ]
        h = hashlib.sha256(_utf8("\x1f".join(parts))).hexdigest()
        return f"anon-{h[:16]}"
    return None


def _from_body(r: ParsedRequest, b: dict[str, Any], betas: list[str]) -> None:
    r.body_keys = tuple(str(k)[:MAX_ID] for k in list(b)[:MAX_NAMES])
    r.model = _str(b.get("model"))
    r.stream = b.get("stream") is True
    mt = b.get("max_tokens")
    r.max_tokens = mt if type(mt) is int and 0 <= mt < 1 << 53 else None
    body_betas = b.get("betas")
    if isinstance(body_betas, list):
        _add_betas(betas, body_betas)
    thinking, oc = b.get("thinking"), b.get("output_config")
    r.thinking = _str(thinking.get("type")) if isinstance(thinking, dict) else None
    r.effort = _str(oc.get("effort")) if isinstance(oc, dict) else None
    _from_metadata(r, b.get("metadata"))

    system = b.get("system")
    system_blocks = _blocks(system)
    system_texts = [system] if isinstance(system, str) else _texts(system)
    billing = _billing(r, system_texts)

    tools_raw = b.get("tools")
    tools = _blocks(tools_raw)
    r.tool_names = tuple(n for n in (_str(t.get("name")) for t in tools) if n)
    if r.tool_names:
        r.tools_digest = hashlib.sha256(_utf8("\x1f".join(r.tool_names))).hexdigest()[:16]

    messages = _blocks(b.get("messages"))
    r.message_count = len(messages)
    conv = 0
    newest_user: dict[str, Any] | None = None
    breakpoints, one_hour = _cache(system_blocks)
    n, h = _cache(tools)
    breakpoints, one_hour = breakpoints + n, one_hour or h
    for m in messages:
        role = m.get("role")
        if role == "user" or role == "assistant":
            conv += 1
            if role == "user":
                newest_user = m
        c = m.get("content")
        if isinstance(c, list):
            n, h = _cache(c)
            breakpoints, one_hour = breakpoints + n, one_hour or h
    r.conversation_messages = conv
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    if first_user is not None:
        r.continued = any(
            t.lstrip().startswith(CONTINUATION_PREFIX) for t in _texts(first_user.get("content"))
        )
    if r.continued:
        # Where the /compact echo sits differs by version (2.1.332: in the continuation
        # message itself; earlier: a later one), so any user message may carry it.
        r.manual_compact = any(
            COMPACT_COMMAND in t
            for m in messages
            if m.get("role") == "user"
            for t in _texts(m.get("content"))
            if COMMAND_NAME_TAG in t
        )
    r.cache_breakpoints = breakpoints
    r.cache_ttl_seconds = 3600 if one_hour else 300

    if r.session_id is None:
        sid = _first_user_key(messages)
        if sid:
            r.session_id, r.session_source = sid, "derived"

    user_content = newest_user.get("content") if newest_user else None
    user_texts = _texts(user_content)
    refs = []
    agent_calls = _agent_call_ids(messages, newest_user) if newest_user else set()
    for blk in _blocks(user_content):
        if blk.get("type") == "tool_result":
            tid = _str(blk.get("tool_use_id"))
            if not tid:
                continue
            agent_id, launched = None, False
            if tid in agent_calls:
                text = _result_text(blk)
                agent_id = agent_id_in(text)
                launched = text.lstrip().startswith(AGENT_LAUNCHED_PREFIX)
            refs.append(ToolResultRef(tid, blk.get("is_error") is True, agent_id, launched))
    r.tool_results = tuple(refs)
    r.notifications = tuple(
        n for t in user_texts if TASK_NOTIFICATION_OPEN in t for n in task_notifications(t)
    )

    # Kind, most specific first (see claude-code-wire.md "How to tell request kinds apart").
    fmt = oc.get("format") if isinstance(oc, dict) else None
    if not tools and (
        (isinstance(fmt, dict) and fmt.get("type") == "json_schema")
        or any("Write the title" in t or "<session>" in t for t in user_texts)
    ):
        r.kind = "title"
    elif any(t.lstrip().startswith(COMPACT_PREFIX) for t in user_texts):
        r.kind = "compaction"
    elif (billing is not None and SUBAGENT_BILLING_FLAG in billing) or (
        tools
        and "context_management" not in b
        and r.thinking == "disabled"
        and any(SUBAGENT_MARKER in t for t in system_texts)
    ):
        r.kind = "subagent"
    elif messages and (billing is not None or "context_management" in b or tools):
        r.kind = "main"

    # Full and unredacted: only hashed (the fingerprint) and re-cleaned below for display.
    human = clean_prompt(
        "\n".join(_human_texts(user_texts, bool(refs))), limit=1 << 62, keep_secrets=True
    )
    # Title, compaction and subagent "prompts" are written by Claude Code, not a person.
    r.new_prompt = bool(human) and r.kind in ("main", "other")
    r.prompt = clean_prompt(human) if r.new_prompt else None
    ids = ",".join(sorted(ref.tool_use_id for ref in refs))
    digest = hashlib.sha256(_utf8(f"{conv}\x00{human}\x00{ids}"))
    r.fingerprint = digest.hexdigest()[:16]
    r.betas = tuple(betas)
    r.context_1m = any(x.startswith("context-1m-") for x in betas)
    if r.kind == "subagent" and first_user is not None:
        # 2.1.197 sends the task prompt alone; 2.1.332 puts context blocks before it.
        texts = _texts(first_user.get("content"))
        keys = [task_key(t) for t in texts[-8:]]
        r.task_keys = tuple(dict.fromkeys([*keys, task_key("\n".join(texts))]))


def task_key(prompt: str) -> str:
    """Digest of a subagent task prompt, as sent in the Agent tool input or the subagent."""
    cleaned = clean_prompt(prompt, limit=1 << 62, keep_secrets=True)  # hashed, never shown
    return hashlib.sha256(_utf8(cleaned)).hexdigest()[:16]


def parse_request(headers: Mapping[str, str], body: bytes | bytearray) -> ParsedRequest:
    """headers: lower-cased names. Never raises; `ok` False when the body is unusable."""
    r = ParsedRequest(ok=False, body_bytes=len(body))
    betas = _from_headers(r, headers)
    r.betas = tuple(betas)
    r.context_1m = any(x.startswith("context-1m-") for x in betas)
    if not body or body.isspace():
        r.error = "empty"
        return r
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        r.error = "not_json"
        return r
    if not isinstance(obj, dict):
        r.error = "not_object"
        return r
    r.ok = True
    try:
        _from_body(r, obj, betas)
    except Exception:  # safety net: a parser bug must not take the tap down
        r.ok, r.error = False, "malformed"
    return r
