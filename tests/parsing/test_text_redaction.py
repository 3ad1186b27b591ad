"""Every display text (the cleaned prompt, the reply summary, tool summaries) is redacted
before its cap: a cut never leaves half a secret, nor half a `[redacted:kind]` marker."""

from __future__ import annotations

import pytest

from clauditor.parsing.fold import TEXT_CAP, fold_message_json
from clauditor.parsing.redact import MARKER_PREFIX
from clauditor.parsing.text import clean_prompt, summarize_text, tool_input_summary
from tests.secrets_corpus import B64, URLSAFE, body

from .streams import message


def test_clean_prompt_redacts_before_the_cap() -> None:
    key = "sk-" + "ant-" + "api03-" + body("cap", 90, URLSAFE)
    for at in range(440, 505, 7):  # the key straddles the 500-char cap in many ways
        out = clean_prompt("x" * at + " " + key + " tail")
        assert len(out) <= 500
        assert key[:20] not in out and key[-20:] not in out
        assert body("cap", 90, URLSAFE)[:8] not in out
        # The cap never splits a marker: either it is whole or it is gone.
        assert MARKER_PREFIX not in out or "[redacted:anthropic_key]" in out


def test_clean_prompt_on_a_pasted_megabyte() -> None:
    key = "ghp_" + body("mb", 36)
    text = "word " * 200_000 + key
    assert clean_prompt(text).endswith("…")
    out = clean_prompt("a " + key + " " + "b" * 1_000_000)
    assert out.startswith("a [redacted:github_token]") and key not in out


def test_clean_prompt_keep_secrets_is_for_hashing_only() -> None:
    key = "ghp_" + body("keep", 36)
    assert clean_prompt(f"use {key}", limit=1 << 62, keep_secrets=True) == f"use {key}"
    assert clean_prompt(f"use {key}") == "use [redacted:github_token]"


def test_summarize_text_redacts() -> None:
    rows = "\n".join(body(f"sum{i}", 64, B64) for i in range(3))
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + rows + "\n-----END RSA PRIVATE KEY-----"
    tok = body("sum-tok", 36)
    reply = f"I set it up with ghp_{tok} as asked.\n\n{pem}\n\nThe key above is installed."
    out = summarize_text(reply)
    assert tok[:12] not in out and "[redacted:github_token]" in out
    assert not [r for r in rows.splitlines() if r[:12] in out]


def test_summary_of_a_long_reply_with_a_key_at_the_cut() -> None:
    key = "sk-" + "ant-" + "api03-" + body("cut", 90, URLSAFE)
    for lead in (TEXT_CAP - 40, TEXT_CAP - 5, 2 * TEXT_CAP - 50, 20 * 300 * 2 - 30):
        text = "word " * (lead // 5) + key + " and more words after it."
        tail = fold_message_json(message([{"type": "text", "text": text}])).text
        out = summarize_text(tail)
        assert body("cut", 90, URLSAFE)[-12:] not in out, lead
        assert body("cut", 90, URLSAFE)[:12] not in summarize_text(text), lead


@pytest.mark.parametrize(
    ("name", "tool_input", "kind", "needle"),
    [
        (
            "Bash",
            {"command": "export AWS_SECRET_ACCESS_KEY=" + body("b1", 40, B64)},
            "aws_secret",
            body("b1", 40, B64),
        ),
        (
            "Bash",
            {
                "command": "curl -u admin:x -H 'Authorization: Bearer "
                + body("b2", 50)
                + "' https://x"
            },
            "bearer",
            body("b2", 50),
        ),
        ("Bash", {"command": "echo ok\nexport TOKEN=" + body("b3", 30)}, None, body("b3", 30)),
        (
            "Grep",
            {"pattern": "ghp_" + body("g1", 36), "path": "src"},
            "github_token",
            body("g1", 36),
        ),
        (
            "WebFetch",
            {"url": "https://alice:" + body("w1", 20) + "@example.com/p?k=v"},
            None,
            body("w1", 20),
        ),
        (
            "WebFetch",
            {"url": "https://example.com/hook/xoxb-1234567890-" + body("w2", 24)},
            "slack_token",
            body("w2", 24),
        ),
        (
            "WebSearch",
            {"query": "is sk-" + "proj-" + body("s1", 60, URLSAFE) + " valid"},
            "openai_key",
            body("s1", 60, URLSAFE),
        ),
        ("Read", {"file_path": "/tmp/x?token=" + body("r1", 30)}, "assignment", body("r1", 30)),
        (
            "Agent",
            {"description": "check AKIA" + "ABCDEFGHIJ234567", "subagent_type": "x"},
            "aws_access_key",
            "ABCDEFGHIJ234567",
        ),
        ("mcp__vault__put", {"password": body("m1", 20), "path": "/x"}, None, body("m1", 20)),
    ],
)
def test_tool_summaries_are_redacted(
    name: str, tool_input: dict[str, object], kind: str | None, needle: str
) -> None:
    out = tool_input_summary(name, tool_input)
    assert needle[:12] not in out and needle[-12:] not in out, out
    if kind is not None:
        assert f"[redacted:{kind}]" in out, out


def test_bash_head_cap_cuts_after_redaction() -> None:
    sec = body("head", 40, B64)
    cmd = "AWS_ACCESS_KEY_ID=AKIA" + "QWERTYUIOP234567 AWS_SECRET_ACCESS_KEY=" + sec + " aws s3 ls"
    out = tool_input_summary("Bash", {"command": cmd})
    assert sec[:8] not in out and "QWERTYUIOP234567" not in out
    assert len(out) <= 60 and MARKER_PREFIX in out


def test_harmless_summaries_unchanged() -> None:
    assert tool_input_summary("Bash", {"command": "git log --oneline -5"}) == "git log --oneline -5"
    assert tool_input_summary("Read", {"file_path": "/src/a.py"}) == "/src/a.py"
    assert tool_input_summary("Grep", {"pattern": "token_count", "path": "src"}) == (
        "token_count in src"
    )
    sha = "3f786850e387550fdab836ed7e6dc881de23001b"
    assert tool_input_summary("Bash", {"command": f"git show {sha}"}) == f"git show {sha}"
