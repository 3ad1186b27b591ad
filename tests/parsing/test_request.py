"""parse_request on every recorded Claude Code request, plus hand-made variants."""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

import pytest

from clauditor.parsing.encoding import BodyDecoder
from clauditor.parsing.request import ParsedRequest, ToolResultRef, parse_request

from .fixtures import all_posts, body, headers, posts

ALL = all_posts()
KINDS = {
    ("k2_interactive_tmux_json_title", 0): "title",
    ("e_subagent", 1): "subagent",
    ("e_compact", 0): "compaction",
}
# First turns (new prompt) vs tool_result continuations, per fixture post index.
NEW_PROMPT = {
    ("a_plain_text", 0): True,
    ("b_tool_bash", 0): True,
    ("b_tool_bash", 1): False,
    ("d_continue_resume", 0): True,
    ("d_continue_resume", 1): True,
    ("e_compact", 0): False,
    ("e_subagent", 0): True,
    ("e_subagent", 1): False,
    ("e_subagent", 2): False,
    ("f_529_retry", 0): True,
    ("f_529_retry", 1): True,  # retries resend the same first turn
    ("f_529_retry", 2): True,
    ("f_529_retry", 3): True,
    ("j_tool_read_ratelimit_warning", 0): True,
    ("j_tool_read_ratelimit_warning", 1): False,
    ("k2_interactive_tmux_json_title", 0): False,
    ("k2_interactive_tmux_json_title", 1): True,
    ("k2_interactive_tmux_json_title", 2): True,
}


def parse(entry: dict[str, Any]) -> ParsedRequest:
    return parse_request(headers(entry), body(entry))


def parse_body(
    entry: dict[str, Any], b: dict[str, Any], drop_header: bool = False
) -> ParsedRequest:
    h = headers(entry)
    if drop_header:
        del h["x-claude-code-session-id"]
    return parse_request(h, json.dumps(b).encode())


def meta(entry: dict[str, Any]) -> dict[str, str]:
    return json.loads(entry["body"]["metadata"]["user_id"])


@pytest.mark.parametrize(("name", "index", "entry"), ALL, ids=[f"{n}-{i}" for n, i, _ in ALL])
def test_every_fixture_request(name: str, index: int, entry: dict[str, Any]) -> None:
    r = parse(entry)
    h = headers(entry)
    assert r.ok is True
    assert r.error is None
    assert r.session_id == h["x-claude-code-session-id"]
    assert r.session_source == "header"
    assert r.device_id == meta(entry)["device_id"]
    assert r.kind == KINDS.get((name, index), "main")
    assert r.model == "claude-opus-4-8"
    assert r.stream is True
    assert r.max_tokens == 64000
    assert r.cc_version == "2.1.197"
    assert r.entrypoint == ("cli" if name.startswith("k2") else "sdk-cli")
    assert r.user_agent == h["user-agent"]
    assert r.betas == tuple(h["anthropic-beta"].split(","))
    assert r.context_1m is ("context-1m-2025-08-07" in h["anthropic-beta"])
    assert r.body_bytes == len(body(entry))
    assert r.message_count == len(entry["body"]["messages"])
    assert r.conversation_messages == sum(
        m["role"] in ("user", "assistant") for m in entry["body"]["messages"]
    )
    assert r.tool_names == tuple(t["name"] for t in entry["body"]["tools"])
    assert r.new_prompt is NEW_PROMPT[(name, index)]
    assert r.cache_ttl_seconds == 300
    assert r.cache_breakpoints == (0 if r.kind == "title" else 3)
    assert len(r.fingerprint) == 16
    assert r.thinking == entry["body"]["thinking"]["type"]
    assert r.effort == "high"


def test_first_turn_prompt_is_cleaned_and_last_message_is_system_role() -> None:
    entry = posts("a_plain_text")[0]
    assert entry["body"]["messages"][-1]["role"] == "system"
    r = parse(entry)
    assert r.prompt == "Say hello in five words."
    assert r.tool_results == ()
    assert r.message_count == 2
    assert r.conversation_messages == 1


def test_tool_results_reference_previous_response_tool_use() -> None:
    first, second = posts("b_tool_bash")
    tool_id = next(b["id"] for b in first["response"]["content"] if b["type"] == "tool_use")
    r = parse(second)
    assert r.tool_results == (ToolResultRef(tool_id, False),)
    assert r.new_prompt is False
    assert r.prompt is None
    assert r.conversation_messages == 3


def test_subagent_detected_by_billing_line_and_by_heuristic() -> None:
    entry = posts("e_subagent")[1]
    assert parse(entry).kind == "subagent"
    b = copy.deepcopy(entry["body"])
    b["system"][0]["text"] = "x-anthropic-billing-header: cc_version=2.1.197.417;"
    b["system"][2]["text"] = "You are an agent for Claude Code, Anthropic's CLI. " + "x" * 50
    assert parse_body(entry, b).kind == "subagent"
    b["system"][2]["text"] = "Something else entirely."
    assert parse_body(entry, b).kind == "main"


def test_title_detected_by_user_text_without_format() -> None:
    entry = posts("k2_interactive_tmux_json_title")[0]
    b = copy.deepcopy(entry["body"])
    del b["output_config"]["format"]
    assert parse_body(entry, b).kind == "title"
    b["messages"][0]["content"][0]["text"] = "plain question"
    assert parse_body(entry, b).kind == "main"  # billing line, no tools: still Claude Code


def test_other_kind_without_messages() -> None:
    r = parse_request({}, b'{"model": "claude-haiku-4-5", "max_tokens": 5}')
    assert (r.ok, r.kind, r.model, r.max_tokens, r.session_id) == (
        True,
        "other",
        "claude-haiku-4-5",
        5,
        None,
    )


def test_529_retries_share_fingerprint_new_turns_do_not() -> None:
    fps = {parse(e).fingerprint for e in posts("f_529_retry")}
    assert len(fps) == 1
    b0, b1 = (parse(e).fingerprint for e in posts("b_tool_bash"))
    assert b0 != b1
    k = [parse(e).fingerprint for e in posts("k2_interactive_tmux_json_title")]
    assert len(set(k)) == 3


def test_non_streaming_resend_and_model_fallback_keep_fingerprint() -> None:
    entry = posts("f_529_retry")[0]
    base = parse(entry)
    # Non-streaming resend after an SSE error: `stream` key absent.
    b = copy.deepcopy(entry["body"])
    del b["stream"]
    resend = parse_body(entry, b)
    assert resend.stream is False
    assert resend.fingerprint == base.fingerprint
    # --fallback-model: other model, budgeted thinking, system-role message folded in.
    fb = copy.deepcopy(entry["body"])
    system_msg = fb["messages"].pop(1)
    assert system_msg["role"] == "system"
    fb["messages"][0]["content"].append(
        {"type": "text", "text": f"<system-reminder>{system_msg['content']}</system-reminder>"}
    )
    fb.update(model="claude-sonnet-4-5-20250929", max_tokens=32000)
    fb["thinking"] = {"type": "enabled", "budget_tokens": 31999}
    del fb["output_config"]
    fallback = parse_body(entry, fb)
    assert fallback.model == "claude-sonnet-4-5-20250929"
    assert fallback.message_count == 1
    assert fallback.effort is None
    assert fallback.fingerprint == base.fingerprint
    assert fallback.prompt == "Say hi (529 test)"


def test_session_from_metadata_when_header_removed() -> None:
    entry = posts("b_tool_bash")[1]
    r = parse_body(entry, entry["body"], drop_header=True)
    assert r.session_id == "04d0a982-8c0f-4567-aba3-6d8e967e76cc"
    assert r.session_source == "metadata"
    assert r.device_id == "aae485c874822356f90f95f62dbada0deee750fc33b53bec00bfdd2bb190801f"


def test_session_from_legacy_metadata() -> None:
    entry = posts("a_plain_text")[0]
    b = copy.deepcopy(entry["body"])
    device = "ab" * 32
    session = "0e4b3c56-1111-4222-8333-944455556666"
    b["metadata"]["user_id"] = f"user_{device}_account__session_{session}"
    r = parse_body(entry, b, drop_header=True)
    assert (r.session_id, r.session_source, r.device_id) == (session, "metadata_legacy", device)
    # The header still wins when present, device still read from metadata.
    r2 = parse_body(entry, b)
    assert r2.session_id == "ce390b95-ab62-4897-8ffd-7a2f88c2a05e"
    assert r2.session_source == "header"
    assert r2.device_id == device


def test_derived_session_is_stable_across_turns() -> None:
    first, second = posts("b_tool_bash")
    ids = []
    for e in (first, second):
        b = copy.deepcopy(e["body"])
        del b["metadata"]
        r = parse_body(e, b, drop_header=True)
        assert r.session_source == "derived"
        ids.append(r.session_id)
    assert ids[0] == ids[1]
    assert ids[0] is not None and ids[0].startswith("anon-")
    assert len(ids[0]) == len("anon-") + 16
    other = copy.deepcopy(posts("a_plain_text")[0]["body"])
    del other["metadata"]
    assert parse_body(first, other, drop_header=True).session_id != ids[0]


def test_garbage_metadata_is_ignored() -> None:
    entry = posts("a_plain_text")[0]
    for uid in ("{not json", '{"session_id": 5}', "[1]", 42, "user_xyz", "x" * 10000):
        b = copy.deepcopy(entry["body"])
        b["metadata"]["user_id"] = uid
        r = parse_body(entry, b, drop_header=True)
        assert r.ok is True
        assert r.session_source == "derived"
        assert r.device_id is None


def test_resumed_string_content_prompt() -> None:
    entry = posts("d_continue_resume")[1]
    b = copy.deepcopy(entry["body"])
    b["messages"][-1]["content"] = "<system-reminder>ctx</system-reminder>Plain   string\nprompt"
    r = parse_body(entry, b)
    assert r.new_prompt is True
    assert r.prompt == "Plain string prompt"


def test_reminder_only_user_message_is_not_a_new_prompt() -> None:
    entry = posts("b_tool_bash")[1]
    b = copy.deepcopy(entry["body"])
    b["messages"][-1]["content"].append(
        {"type": "text", "text": "<system-reminder>todo list changed</system-reminder>"}
    )
    r = parse_body(entry, b)
    assert r.new_prompt is False
    assert r.fingerprint == parse(entry).fingerprint


def test_cache_ttl_1h_and_breakpoints_and_body_betas() -> None:
    entry = posts("a_plain_text")[0]
    b = copy.deepcopy(entry["body"])
    b["system"][1]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    b["tools"][0]["cache_control"] = {"type": "ephemeral"}
    b["betas"] = ["files-api-2025-04-14", "effort-2025-11-24", 7]
    h = headers(entry)
    h["anthropic-beta"] = " effort-2025-11-24 , ,foo-1"
    r = parse_request(h, json.dumps(b).encode())
    assert r.cache_ttl_seconds == 3600
    assert r.cache_breakpoints == 4
    assert r.betas == ("effort-2025-11-24", "foo-1", "files-api-2025-04-14")
    assert r.context_1m is False


def test_error_kinds() -> None:
    h = {"x-claude-code-session-id": "s-1", "anthropic-beta": "context-1m-2025-08-07"}
    empty = parse_request(h, b"")
    assert (empty.ok, empty.error, empty.session_id, empty.context_1m) == (
        False,
        "empty",
        "s-1",
        True,
    )
    assert parse_request(h, b"  \n").error == "empty"
    bad = parse_request(h, b"{nope")
    assert (bad.ok, bad.error, bad.body_bytes) == (False, "not_json", 5)
    assert parse_request(h, b"[1, 2]").error == "not_object"
    assert parse_request(h, b'"str"').error == "not_object"
    assert parse_request(h, b"\xff\xfe\x00garbage").error == "not_json"


def test_gzip_body_must_be_decoded_by_caller() -> None:
    entry = posts("b_tool_bash")[1]
    raw = body(entry)
    zipped = gzip.compress(raw)
    h = headers(entry) | {"content-encoding": "gzip"}
    r = parse_request(h, zipped)
    assert (r.ok, r.error, r.session_id) == (
        False,
        "not_json",
        headers(entry)["x-claude-code-session-id"],
    )
    dec = BodyDecoder("gzip")
    decoded = dec.feed(zipped) + dec.flush()
    r2 = parse_request(h, decoded)
    assert r2.ok is True
    assert r2.tool_results == (ToolResultRef("toolu_01garTg1cCYCg3o0x3s0K7oL", False),)


def test_multi_megabyte_body() -> None:
    entry = posts("b_tool_bash")[1]
    b = copy.deepcopy(entry["body"])
    big = "line of tool output\n" * 250_000  # 5 MB
    b["messages"][-1]["content"][0]["content"] = big
    raw = json.dumps(b).encode()
    assert len(raw) > 5_000_000
    r = parse_request(headers(entry), raw)
    assert r.ok is True
    assert r.body_bytes == len(raw)
    assert r.tool_results == (ToolResultRef("toolu_01garTg1cCYCg3o0x3s0K7oL", False),)
    assert r.fingerprint == parse(entry).fingerprint  # tool output is not part of it


def test_tool_result_is_error_flag_and_non_string_ids() -> None:
    entry = posts("b_tool_bash")[1]
    b = copy.deepcopy(entry["body"])
    b["messages"][-1]["content"] = [
        {"type": "tool_result", "tool_use_id": "toolu_b", "is_error": True, "content": "boom"},
        {"type": "tool_result", "tool_use_id": 12, "content": "x"},
        {"type": "tool_result", "tool_use_id": "toolu_a", "is_error": "yes"},
    ]
    r = parse_body(entry, b)
    assert r.tool_results == (ToolResultRef("toolu_b", True), ToolResultRef("toolu_a", False))


def test_tools_digest_follows_the_tool_list_in_order() -> None:
    entry = posts("a_plain_text")[0]
    base = parse(entry)
    assert len(base.tools_digest) == 16
    assert parse(posts("b_tool_bash")[1]).tools_digest == base.tools_digest  # same 24 tools
    b = copy.deepcopy(entry["body"])
    b["tools"] = b["tools"][:-1]  # an MCP tool went away
    fewer = parse_body(entry, b)
    b["tools"] = list(reversed(entry["body"]["tools"]))
    reordered = parse_body(entry, b)
    assert len({base.tools_digest, fewer.tools_digest, reordered.tools_digest}) == 3
    b["tools"] = []
    assert parse_body(entry, b).tools_digest == ""


def test_continuation_after_a_compaction() -> None:
    entry = posts("a_plain_text")[0]
    assert parse(entry).continued is False
    assert all(parse(e).continued is False for _, _, e in ALL)
    b = copy.deepcopy(entry["body"])
    b["messages"][0]["content"][0] = {
        "type": "text",
        "text": "This session is being continued from a previous conversation that ran out "
        "of context. The summary below covers the earlier portion of the conversation.",
    }
    r = parse_body(entry, b)
    assert (r.continued, r.kind, r.new_prompt) == (True, "main", True)
    b["messages"][0]["content"] = "This session is being continued from a previous conversation"
    assert parse_body(entry, b).continued is True


@pytest.mark.parametrize(
    ("value", "version"),
    [("2.1.332.7b2", "2.1.332"), ("2.1.197.", "2.1.197"), ("2.1.400", "2.1.400"),
     ("2.1.332.abc123", "2.1.332"), ("weird-build", "weird-build")],
)  # fmt: skip
def test_the_version_is_the_billing_line_s_first_three_numbers(value: str, version: str) -> None:
    entry = posts("a_plain_text")[0]
    b = copy.deepcopy(entry["body"])
    b["system"][0]["text"] = f"x-anthropic-billing-header: cc_version={value}; cc_entrypoint=cli;"
    assert parse_body(entry, b).cc_version == version
