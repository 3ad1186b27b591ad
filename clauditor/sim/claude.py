"""A synthetic Claude Code client: requests shaped like Claude Code 2.1.197 on the wire.

Header names and order, the `?beta=true` query, body key order, the 3-block system prompt
with the billing line, the first-turn shape (system-reminder + prompt, then a system-role
message), the single cache_control marker that moves to the newest user block, assistant
messages echoed exactly as streamed, tool_result rounds, byte-identical resends on 529 and
the non-streaming resend after a mid-stream SSE error. Prose (system prompt, tool
descriptions) is short synthetic filler; `pad_bytes` inflates the system prompt.

Responses are read by clauditor.sim.reading (the simulator's own reader, never
clauditor.parsing): the content blocks to echo back, the text, usage and tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clauditor.sim.reading import EventReader, MessageReader, Received, Usage, read_unary
from clauditor.sim.transport import OrderedHeadersTransport

__all__ = [
    "API_KEY",
    "CLAUDE_CODE_VERSION",
    "DEVICE_ID",
    "MAIN_TOOL_NAMES",
    "SUBAGENT_TOOL_NAMES",
    "SyntheticSession",
    "TurnResult",
    "main_betas",
    "run_demo_sessions",
]

CLAUDE_CODE_VERSION = "2.1.197"
API_KEY = "sk-ant-test-fake"
# device_id is per HOME in Claude Code, so one constant for every synthetic session.
DEVICE_ID = hashlib.sha256(b"clauditor synthetic HOME").hexdigest()

MAIN_TOOL_NAMES: tuple[str, ...] = (
    "Agent",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
)
INTERACTIVE_EXTRA_TOOLS: tuple[str, ...] = ("AskUserQuestion", "EnterPlanMode", "ExitPlanMode")
SUBAGENT_TOOL_NAMES: tuple[str, ...] = tuple(
    n for n in MAIN_TOOL_NAMES if n not in ("ScheduleWakeup", "TaskOutput", "Workflow")
)

_BETA_1M = "context-1m-2025-08-07"
_BETA_REDACT = "redact-thinking-2026-02-12"
_BETA_STRUCTURED = "structured-outputs-2025-12-15"

COMPACT_INSTRUCTION = "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."
CONTINUATION_PREFIX = (
    "This session is being continued from a previous conversation that ran out of context. "
    "The summary below covers the earlier portion of the conversation.\n\n"
)

_FILLER = "Synthetic filler standing in for Claude Code prose, replaced for tests. "
_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

# Input properties of the tools we know a little about; the rest get a generic one.
_TOOL_PROPS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "Agent": (
        {"description": "string", "prompt": "string", "subagent_type": "string"},
        ("description", "prompt"),
    ),
    "Bash": (
        {"command": "string", "timeout": "number", "description": "string"},
        ("command",),
    ),
    "Edit": (
        {"file_path": "string", "old_string": "string", "new_string": "string"},
        ("file_path", "old_string", "new_string"),
    ),
    "Read": ({"file_path": "string", "offset": "number", "limit": "number"}, ("file_path",)),
    "Write": ({"file_path": "string", "content": "string"}, ("file_path", "content")),
    "WebFetch": ({"url": "string", "prompt": "string"}, ("url", "prompt")),
    "WebSearch": ({"query": "string"}, ("query",)),
}


def filler(n: int) -> str:
    """Exactly n characters of deterministic filler text."""
    if n <= 0:
        return ""
    return (_FILLER * (n // len(_FILLER) + 1))[:n]


def _tool_def(name: str) -> dict[str, Any]:
    props, required = _TOOL_PROPS.get(name, ({"input": "string"}, ()))
    return {
        "name": name,
        "description": f"{name}: " + filler(160),
        "input_schema": {
            "$schema": _SCHEMA,
            "type": "object",
            "properties": {k: {"description": filler(24), "type": t} for k, t in props.items()},
            "required": list(required),
            "additionalProperties": False,
        },
    }


def main_betas(*, context_1m: bool = True, interactive: bool = False) -> list[str]:
    """The anthropic-beta list of a main-thread turn."""
    out = ["claude-code-20250219"]
    if context_1m:
        out.append(_BETA_1M)
    out.append("interleaved-thinking-2025-05-14")
    if interactive:
        out.append(_BETA_REDACT)
    out += [
        "thinking-token-count-2026-05-13",
        "context-management-2025-06-27",
        "prompt-caching-scope-2026-01-05",
        "mid-conversation-system-2026-04-07",
        "effort-2025-11-24",
    ]
    return out


def _fingerprint(prompt: str) -> str:
    # Claude Code's 3-hex suffix is derived from the first prompt; any stable hash will do.
    return hashlib.sha256(prompt.encode()).hexdigest()[:3]


def _encode(body: dict[str, Any]) -> bytes:
    # JSON.stringify: compact, non-ASCII left as is.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _ephemeral() -> dict[str, str]:
    return {"type": "ephemeral"}


def _system_reminder() -> str:
    return (
        "<system-reminder>\nAs you answer the user's questions, you can use the following "
        "context:\n# currentDate\nToday's date is 2026-01-01.\n\n      IMPORTANT: this "
        "context may or may not be relevant to your tasks.\n</system-reminder>\n\n"
    )


def _move_marker(messages: list[dict[str, Any]], index: int) -> None:
    """Claude Code keeps a single message-level cache_control: on the last block of index."""
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for b in content:
                if isinstance(b, dict):
                    b.pop("cache_control", None)
    content = messages[index].get("content")
    if isinstance(content, list) and content:
        content[-1]["cache_control"] = _ephemeral()


@dataclass
class TurnResult:
    requests: int = 0
    tool_uses: list[str] = field(default_factory=list)  # tool names, in call order
    final_text: str = ""
    stop_reason: str | None = None
    statuses: list[int] = field(default_factory=list)  # one per request; 0 = transport error
    received: list[bytes] = field(default_factory=list)  # decoded body bytes per request
    # Extensions:
    request_ids: list[str] = field(default_factory=list)
    results: list[Received] = field(default_factory=list)  # as read, one per request
    tool_use_ids: list[str] = field(default_factory=list)

    @property
    def usages(self) -> list[Usage]:
        return [r.usage for r in self.results]

    def _add(self, other: TurnResult) -> None:
        self.requests += other.requests
        self.statuses += other.statuses
        self.received += other.received
        self.request_ids += other.request_ids
        self.results += other.results


@dataclass
class _Response:
    status: int
    raw: bytes
    request_id: str
    result: Received
    transport_error: bool = False

    @property
    def content(self) -> list[dict[str, Any]]:
        return self.result.content


class SyntheticSession:
    """One Claude Code process/session talking to base_url (the fake, or a proxy in front).

    Without `client`, requests go through OrderedHeadersTransport so headers leave in
    Claude Code's exact order; a caller-supplied httpx client keeps its own transport
    (httpx's default one writes `Host` first).
    """

    def __init__(
        self,
        base_url: str,
        session_id: str | None = None,
        model: str = "claude-opus-4-8",
        client: httpx.AsyncClient | None = None,
        pad_bytes: int = 0,
        *,
        failing_tools: Iterable[str] = (),
        interactive: bool = False,
        context_1m: bool = True,
        max_retries: int = 3,
        retry_base_delay: float = 0.0,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session_id = session_id or str(uuid.uuid4())
        self.model = model
        self.pad_bytes = pad_bytes
        self.failing_tools = set(failing_tools)
        self.interactive = interactive
        self.context_1m = context_1m
        self.max_retries = max_retries  # resends after a 529 or a broken stream
        self.retry_base_delay = retry_base_delay  # Claude Code: ~0.5 s, doubling
        self._own_client = client is None
        # Our own transport by default: httpx's h11 would move Host to the front.
        self._client = client or httpx.AsyncClient(
            transport=OrderedHeadersTransport(), timeout=timeout
        )
        self._url = self.base_url + "/v1/messages?beta=true"
        self._host = httpx.URL(self.base_url).netloc.decode("ascii")
        self.entrypoint = "cli" if interactive else "sdk-cli"
        self.messages: list[dict[str, Any]] = []  # the main-thread conversation
        self.first_prompt: str | None = None
        self._fingerprint = ""
        self._continuation: str | None = None  # set by compact() for the next turn
        names = MAIN_TOOL_NAMES + (INTERACTIVE_EXTRA_TOOLS if interactive else ())
        self._tools = [_tool_def(n) for n in sorted(names)]
        self._subagent_tools = [_tool_def(n) for n in SUBAGENT_TOOL_NAMES]
        self._user_id = json.dumps(
            {"device_id": DEVICE_ID, "account_uuid": "", "session_id": self.session_id},
            separators=(",", ":"),
        )

    async def __aenter__(self) -> SyntheticSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    # ------------------------------------------------------------ wire shapes

    def headers(
        self, content_length: int, *, timeout: int = 600, betas: list[str] | None = None
    ) -> list[tuple[str, str]]:
        """Request headers in Claude Code's exact order."""
        betas = betas if betas is not None else self.betas()
        return [
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("User-Agent", f"claude-cli/{CLAUDE_CODE_VERSION} (external, {self.entrypoint})"),
            ("X-Claude-Code-Session-Id", self.session_id),
            ("X-Stainless-Arch", "x64"),
            ("X-Stainless-Lang", "js"),
            ("X-Stainless-OS", "Linux"),
            ("X-Stainless-Package-Version", "0.94.0"),
            ("X-Stainless-Retry-Count", "0"),  # always 0, even on Claude Code's own resends
            ("X-Stainless-Runtime", "node"),
            ("X-Stainless-Runtime-Version", "v26.3.0"),
            ("X-Stainless-Timeout", str(timeout)),
            ("anthropic-beta", ",".join(betas)),
            ("anthropic-dangerous-direct-browser-access", "true"),
            ("anthropic-version", "2023-06-01"),
            ("x-api-key", API_KEY),
            ("x-app", "cli"),
            ("Connection", "keep-alive"),
            ("Host", self._host),
            ("Accept-Encoding", "gzip, deflate, br, zstd"),
            ("Content-Length", str(content_length)),
        ]

    def betas(self) -> list[str]:
        return main_betas(context_1m=self.context_1m, interactive=self.interactive)

    def _billing(self, fingerprint: str, subagent: bool = False) -> dict[str, Any]:
        line = (
            f"x-anthropic-billing-header: cc_version={CLAUDE_CODE_VERSION}.{fingerprint}; "
            f"cc_entrypoint={self.entrypoint};"
        )
        if subagent:
            line += " cc_is_subagent=true;"
        return {"type": "text", "text": line}

    def _system(self, fingerprint: str) -> list[dict[str, Any]]:
        return [
            self._billing(fingerprint),
            {
                "type": "text",
                "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
                "cache_control": _ephemeral(),
            },
            {
                "type": "text",
                "text": filler(5700 + max(0, self.pad_bytes)),
                "cache_control": _ephemeral(),
            },
        ]

    def main_body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """A main-thread request body (key order as Claude Code sends it)."""
        return {
            "model": self.model,
            "messages": messages,
            "system": self._system(self._fingerprint),
            "tools": self._tools,
            "metadata": {"user_id": self._user_id},
            "max_tokens": 64000,
            "thinking": {"type": "adaptive"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high"},
            "stream": True,
        }

    def _subagent_body(self, messages: list[dict[str, Any]], fingerprint: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "system": [
                self._billing(fingerprint, subagent=True),
                {
                    "type": "text",
                    "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
                    "cache_control": _ephemeral(),
                },
                {
                    "type": "text",
                    "text": "You are an agent for Claude Code, Anthropic's official CLI for "
                    "Claude. " + filler(2400),
                    "cache_control": _ephemeral(),
                },
            ],
            "tools": self._subagent_tools,
            "metadata": {"user_id": self._user_id},
            "max_tokens": 64000,
            "thinking": {"type": "disabled"},
            "output_config": {"effort": "high"},
            "stream": True,
        }

    @staticmethod
    def _first_messages(prompt: str, system_text: str) -> list[dict[str, Any]]:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": _system_reminder()},
                    {"type": "text", "text": prompt, "cache_control": _ephemeral()},
                ],
            },
            {"role": "system", "content": system_text},
        ]

    # ------------------------------------------------------------ conversation

    async def turn(self, prompt: str, max_requests: int = 20) -> TurnResult:
        """One user prompt, then tool rounds until the reply stops asking for tools."""
        if not self.messages:
            if self._continuation is not None:
                # After /compact: the summary opens the new conversation.
                lead = self._continuation
                self._continuation = None
                self._fingerprint = _fingerprint(lead)
                self.messages = [{"role": "user", "content": [{"type": "text", "text": lead}]}]
            else:
                self._fingerprint = _fingerprint(prompt)
            self.first_prompt = self.first_prompt or prompt
            self.messages += self._first_messages(
                prompt, "Available agent types for the Agent tool: " + filler(400)
            )
            _move_marker(self.messages, len(self.messages) - 2)
        else:
            self.messages.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
            _move_marker(self.messages, len(self.messages) - 1)
        return await self._loop(self.messages, self.main_body, max_requests)

    async def subagent(self, prompt: str, max_requests: int = 20) -> TurnResult:
        """A subagent's own conversation (what the Agent tool runs), with its tool rounds."""
        fingerprint = _fingerprint(prompt)
        messages = self._first_messages(prompt, "Available skills: " + filler(300))

        def body(msgs: list[dict[str, Any]]) -> dict[str, Any]:
            return self._subagent_body(msgs, fingerprint)

        return await self._loop(messages, body, max_requests)

    async def title(self) -> TurnResult:
        """The session-title side call (interactive mode sends it once, with the first turn)."""
        text = (
            f"<session>\n{self.first_prompt or 'untitled session'}\n</session>\n\n"
            "Write the title in the language the user wrote in, regardless of the language "
            "of the examples above."
        )
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
            "system": [
                self._billing(_fingerprint(text)),
                {
                    "type": "text",
                    "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                },
                {"type": "text", "text": filler(1190)},
            ],
            "tools": [],
            "metadata": {"user_id": self._user_id},
            "max_tokens": 64000,
            "thinking": {"type": "disabled"},
            "output_config": {
                "effort": "high",
                "format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"title": {"type": "string"}},
                        "required": ["title"],
                        "additionalProperties": False,
                    },
                },
            },
            "stream": True,
        }
        out = TurnResult()
        resp = await self._request(body, out, betas=[*self.betas(), _BETA_STRUCTURED])
        out.final_text = resp.result.text
        out.stop_reason = resp.result.stop_reason
        return out

    async def compact(self, instructions: str | None = None) -> TurnResult:
        """The /compact request; on success the next turn() opens with the summary."""
        if not self.messages:
            raise RuntimeError("nothing to compact: run a turn first")
        messages = [json.loads(json.dumps(m)) for m in self.messages]  # leave history intact
        blocks = [{"type": "text", "text": instructions}] if instructions else []
        blocks.append({"type": "text", "text": COMPACT_INSTRUCTION + " " + filler(600)})
        # The marker stays on the previous assistant message: the whole prefix is reused.
        last_assistant = max(
            (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None
        )
        _move_marker(messages, last_assistant if last_assistant is not None else 0)
        messages.append({"role": "user", "content": blocks})
        out = TurnResult()
        resp = await self._request(self.main_body(messages), out)
        out.final_text = resp.result.text
        out.stop_reason = resp.result.stop_reason
        if resp.status == 200 and resp.result.complete:
            self._continuation = CONTINUATION_PREFIX + resp.result.text
            self.messages = []
        return out

    async def preflight(self) -> int:
        """Claude Code's `HEAD /` on its own connection; returns the status."""
        headers = [
            ("Connection", "keep-alive"),
            ("User-Agent", "Bun/1.4.0"),
            ("Accept", "*/*"),
            ("Host", self._host),
            ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ]
        async with httpx.AsyncClient(transport=OrderedHeadersTransport(), timeout=10) as c:
            resp = await c.send(httpx.Request("HEAD", self.base_url + "/", headers=headers))
            return resp.status_code

    # ------------------------------------------------------------ machinery

    async def _loop(
        self,
        messages: list[dict[str, Any]],
        make_body: Callable[[list[dict[str, Any]]], dict[str, Any]],
        max_requests: int,
    ) -> TurnResult:
        out = TurnResult()
        for _ in range(max_requests):
            resp = await self._request(make_body(messages), out)
            out.stop_reason = resp.result.stop_reason
            if resp.status != 200 or not resp.result.complete:
                break  # Claude Code would surface the error; history stays without a reply
            messages.append({"role": "assistant", "content": resp.content})
            out.final_text = resp.result.text
            calls = [b for b in resp.content if b.get("type") == "tool_use"]
            if not calls or resp.result.stop_reason != "tool_use":
                break
            results = []
            for call in calls:
                out.tool_uses.append(call["name"])
                out.tool_use_ids.append(call["id"])
                results.append(await self._tool_result(call, out))
            messages.append({"role": "user", "content": results})
            _move_marker(messages, len(messages) - 1)
            if out.requests >= max_requests:
                break
        return out

    async def _tool_result(self, call: dict[str, Any], out: TurnResult) -> dict[str, Any]:
        name = call["name"]
        content: Any = "ok"
        if name == "Agent" and name not in self.failing_tools:
            # The Agent tool runs a subagent on the same connection before the tool_result.
            prompt = str((call.get("input") or {}).get("prompt") or "subagent task")
            sub = await self.subagent(prompt)
            out._add(sub)
            content = [{"type": "text", "text": sub.final_text}]
        failed = name in self.failing_tools
        if failed:
            content = f"Error: {name} failed (synthetic)"
        return {
            "tool_use_id": call["id"],
            "type": "tool_result",
            "content": content,
            "is_error": failed,
        }

    async def _request(
        self, body: dict[str, Any], out: TurnResult, betas: list[str] | None = None
    ) -> _Response:
        """Send, resending like Claude Code: same bytes after a 529 or a broken stream,
        non-streaming (no `stream` key, 300 s timeout) after an SSE error event."""
        data = _encode(body)
        resp = await self._send(data, out, betas, stream=True)
        for attempt in range(self.max_retries):
            if resp.status != 529 and not resp.transport_error:
                break
            if self.retry_base_delay > 0:
                await asyncio.sleep(self.retry_base_delay * 2**attempt)
            resp = await self._send(data, out, betas, stream=True)
        if resp.status == 200 and resp.result.error_type and not resp.result.complete:
            unary = {k: v for k, v in body.items() if k != "stream"}
            resp = await self._send(_encode(unary), out, betas, stream=False, timeout=300)
        return resp

    async def _send(
        self,
        data: bytes,
        out: TurnResult,
        betas: list[str] | None,
        *,
        stream: bool,
        timeout: int = 600,
    ) -> _Response:
        request = httpx.Request(
            "POST",
            self._url,
            headers=self.headers(len(data), timeout=timeout, betas=betas),
            content=data,
        )
        raw = bytearray()
        status = 0
        request_id = ""
        result = Received()
        broken = False
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.TransportError:
            resp = None
            broken = True
        if resp is not None:
            status = resp.status_code
            request_id = resp.headers.get("request-id", "")
            is_sse = resp.headers.get("content-type", "").startswith("text/event-stream")
            try:
                if is_sse:
                    events, message = EventReader(), MessageReader()
                    try:
                        async for chunk in resp.aiter_bytes():
                            raw += chunk
                            for name, payload in events.feed(chunk):
                                message.feed(name, payload)
                    except (httpx.TransportError, httpx.DecodingError):
                        broken = True
                    for name, payload in events.flush():
                        message.feed(name, payload)
                    result = message.result()
                else:
                    try:
                        raw += await resp.aread()
                    except (httpx.TransportError, httpx.DecodingError):
                        broken = True
                    obj: Any = None
                    with contextlib.suppress(ValueError):
                        obj = json.loads(raw)
                    result = read_unary(obj)
            finally:
                await resp.aclose()
        out.requests += 1
        out.statuses.append(status)
        out.received.append(bytes(raw))
        out.request_ids.append(request_id)
        out.results.append(result)
        return _Response(status, bytes(raw), request_id, result, transport_error=broken)


async def run_demo_sessions(
    base_url: str, sessions: int = 3, turns: int = 2, event_delay: float = 0.02
) -> list[str]:
    """Drive concurrent sessions (each its own connection, like separate processes) through
    a mix of plain and tool turns (Bash, Read, Grep via `[[fake:tool ...]]`); their ids."""
    tools: list[tuple[str, dict[str, Any]]] = [
        ("Bash", {"command": "ls -la"}),
        ("Read", {"file_path": "/home/dev/project/README.md"}),
        ("Grep", {"pattern": "TODO", "path": "."}),
    ]
    delay = f" [[fake:delay {event_delay}]]" if event_delay > 0 else ""

    async def one(i: int) -> str:
        async with SyntheticSession(base_url) as s:
            await s.preflight()
            for t in range(turns):
                if (i + t) % 2 == 0:
                    name, args = tools[i % len(tools)]
                    prompt = f"demo {i}.{t}: use {name} [[fake:tool {name} {json.dumps(args)}]]"
                else:
                    prompt = f"demo {i}.{t}: say hello"
                await s.turn(prompt + delay)
            return s.session_id

    return list(await asyncio.gather(*(one(i) for i in range(sessions))))
