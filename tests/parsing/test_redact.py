"""Secrets become `[redacted:kind]` in every display text; ordinary text is left alone;
hostile input stays linear and never raises."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clauditor.parsing.redact import redact
from tests.secrets_corpus import B64, HARMLESS, URLSAFE, Secret, body, corpus

CORPUS = corpus()


def _leaks(secret: Secret, out: str) -> list[str]:
    return [n for n in secret.needles() if n in out]


@pytest.mark.parametrize("secret", CORPUS, ids=lambda s: f"{s.kind}:{s.text[:24]}")
def test_every_secret_becomes_its_marker(secret: Secret) -> None:
    out = redact(secret.text)
    assert f"[redacted:{secret.kind}]" in out, out
    assert not _leaks(secret, out), out
    assert redact(out) == out  # idempotent: a marker is never redacted again


def test_corpus_covers_every_kind() -> None:
    assert {s.kind for s in CORPUS} == {
        "anthropic_key", "openai_key", "aws_access_key", "aws_secret", "github_token",
        "slack_token", "bearer", "private_key", "jwt", "assignment", "url_password",
    }  # fmt: skip


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_the_context_stays_readable() -> None:
    sec = body("ctx", 40, B64)
    assert redact(f"export AWS_SECRET_ACCESS_KEY={sec}; aws s3 ls") == (
        "export AWS_SECRET_ACCESS_KEY=[redacted:aws_secret]; aws s3 ls"
    )
    tok = body("ctx-bearer", 40)
    assert redact(f'curl -H "Authorization: Bearer {tok}" x') == (
        'curl -H "Authorization: Bearer [redacted:bearer]" x'
    )
    pw = body("ctx-url", 12)
    assert redact(f"https://bob:{pw}@example.com/x") == (
        "https://bob:[redacted:url_password]@example.com/x"
    )
    assert redact(f'{{"password": "{pw} two words"}}') == '{"password": "[redacted:assignment]"}'
    assert redact(f"--api-key={pw} --verbose") == "--api-key=[redacted:assignment] --verbose"
    assert redact(f"token := '{pw}'") == "token := '[redacted:assignment]'"


def test_a_secret_longer_than_any_pattern_goes_whole() -> None:
    tail = body("long", 3000, URLSAFE)
    out = redact("sk-ant-" + "api03-" + tail + " end")
    assert out == "[redacted:anthropic_key] end"
    pw = body("long-pw", 2000)
    assert redact(f"PASSWORD={pw} x") == "PASSWORD=[redacted:assignment] x"


def test_private_key_cut_off_or_missing_its_start() -> None:
    rows = [body(f"pem{i}", 64, B64) for i in range(3)]
    head = "-----BEGIN EC " + "PRIVATE KEY-----"
    end = "-----END EC " + "PRIVATE KEY-----"
    assert redact("key " + head + "\n" + rows[0][:30]) == "key [redacted:private_key]"
    # The tail of a text whose start was dropped: the body before a lone END goes too.
    out = redact(rows[1] + "\n" + rows[2] + "\n" + end + "\nThat was the key.")
    assert out == "[redacted:private_key]\nThat was the key."
    two = f"{head}\n{rows[0]}\n{end} and {head}\n{rows[1]}\n{end} done"
    assert redact(two) == "[redacted:private_key] and [redacted:private_key] done"


def test_truncated_text_loses_its_cut_token() -> None:
    half = "ghp_" + body("half", 20)  # too short to be recognised: it was cut
    assert redact("see " + half, truncated=True) == "see"
    assert redact("see " + half) == "see " + half  # whole, it is just a word
    assert redact("a <b", truncated=True) == "a <"


def test_not_a_string_never_raises() -> None:
    for bad in (None, 3, b"sk-ant-x", ["x"], {"a": 1}):
        assert redact(bad) == ""  # type: ignore[arg-type]
    assert redact("") == ""


_FRAGMENTS = [
    "sk-",
    "sk-ant-",
    "api03-",
    "AKIA",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "eyJ",
    ".",
    "Bearer ",
    "Authorization: ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "://",
    ":",
    "@",
    "=",
    "password",
    "KEY",
    "_",
    "--token ",
    '"',
    "'",
    "\\",
    " ",
    "\n",
    "[",
    "[redacted:",
    "]",
    "A" * 17,
    "a1B2" * 5,
    "/",
    "+",
    "é",
    "\ud800",
    "\x00",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=8), max_size=60))
def test_hostile_fragments_never_raise(parts: list[str]) -> None:
    text = "".join(parts)
    out = redact(text)
    assert isinstance(out, str)
    assert redact(out) == out
    assert isinstance(redact(text, truncated=True), str)


ADVERSARIAL = {
    "spaces": " " * 1_000_000,
    "one token": "A" * 1_000_000,
    "a=a=": "a=" * 500_000,
    "key: key:": "key: " * 200_000,
    "keyword runs": ("key" * 26 + " ") * 12_500,
    "sk- repeated": "sk-" * 340_000,
    "eyJ repeated": "eyJ" * 340_000,
    "jwt heads": ("eyJ" + "a" * 4000 + ".") * 250,
    "lone PEM ends": "-----END RSA PRIVATE KEY-----" * 35_000,
    "PEM begin, no end": "-----BEGIN RSA PRIVATE KEY-----" + "x" * 1_000_000,
    "url, no @": "a://u:" + ":" * 1_000_000,
    "url, all @": "x://u:" + "@" * 1_000_000,
    "authorization": "Authorization: " * 70_000,
    "bearer": "bearer " * 150_000,
    "open quote": 'password="' + "a" * 1_000_000,
    "slashes": "/" * 1_000_000,
    "mixed": ("AKIA" + "A" * 12 + " sk-ant-" + "x-" * 10 + " --token ") * 20_000,
    "prose": "The quick brown fox; key: value, token_count=5. " * 21_000,
}


def test_a_megabyte_of_hostile_text_is_linear(capsys: pytest.CaptureFixture[str]) -> None:
    """Measured, not asserted (shared CI machines vary); printed with -s. No pattern may
    backtrack catastrophically: each case is ~1 MB and all finish in well under a second
    each on a laptop (see the numbers printed)."""
    timings = []
    for name, text in ADVERSARIAL.items():
        start = time.perf_counter()
        out = redact(text)
        redact(text[:8192], truncated=True)
        timings.append((time.perf_counter() - start, name, len(text)))
        assert isinstance(out, str)
    with capsys.disabled():
        worst = max(timings)
        print(
            f"\nredact on {len(timings)} hostile ~1 MB texts: worst {worst[0] * 1000:.0f} ms "
            f"({worst[1]}), total {sum(t for t, _, _ in timings) * 1000:.0f} ms"
        )
