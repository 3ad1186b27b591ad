"""Fake secrets of every kind clauditor redacts, and ordinary text it must leave alone.

Every secret is built here from parts and a seeded generator, so no literal that a secret
scanner would flag sits in the repository, and each value has a random body that cannot
occur anywhere by chance: a leak is found by searching for pieces of that body.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"

WINDOW = 12  # a leaked piece this long of a random body is never a coincidence


def body(seed: str, n: int, alphabet: str = ALNUM) -> str:
    """n pseudo-random chars, the same every run; mixed case and digits guaranteed."""
    rng = random.Random(seed)
    classes = [
        c
        for c in (string.digits, string.ascii_uppercase, string.ascii_lowercase)
        if set(c) & set(alphabet)
    ]
    for _ in range(1000):
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if all(set(c) & set(s) for c in classes):
            return s
    raise AssertionError("no mixed body")  # pragma: no cover


@dataclass(frozen=True)
class Secret:
    kind: str  # the marker it must become: [redacted:kind]
    text: str  # how a person pastes it (the secret inside some context)
    secret: str  # the secret itself (what must never be stored)
    random_part: str  # its random body: every WINDOW-char piece of it is a needle

    @property
    def shaped(self) -> bool:
        """Recognisable on its own (a prefix, a key block, a 40-char AWS secret), not
        only by its context (`Bearer x`, `PASSWORD=x`, `user:x@host`)."""
        return self.kind not in ("bearer", "assignment", "url_password")

    def needles(self) -> list[str]:
        r = self.random_part
        step = WINDOW // 2
        pieces = {r[i : i + WINDOW] for i in range(0, max(1, len(r) - WINDOW + 1), step)}
        pieces.add(r[-WINDOW:])
        return sorted({self.secret, *pieces})


def _s(kind: str, text: str, secret: str, random_part: str | None = None) -> Secret:
    assert secret in text
    return Secret(kind, text, secret, random_part or secret)


def _pem(kind: str, seed: str, lines: int) -> tuple[str, str]:
    rows = [body(f"{seed}{i}", 64, B64) for i in range(lines)]
    head = f"-----BEGIN {kind}PRIVATE KEY-----"
    return head + "\n" + "\n".join(rows) + "\n" + f"-----END {kind}PRIVATE KEY-----", "".join(rows)


def corpus() -> list[Secret]:
    """One or more fake secrets of each kind, each in the context it is usually pasted."""
    out: list[Secret] = []

    b = body("anthropic", 93, URLSAFE) + "AA"
    key = "sk-" + "ant-" + "api03-" + b
    out.append(_s("anthropic_key", f"here is my key {key} please keep it", key, b))
    b = body("oauth", 80, URLSAFE)
    key = "sk-" + "ant-" + "oat01-" + b
    out.append(_s("anthropic_key", f"ANTHROPIC_AUTH_TOKEN={key}", key, b))

    b = body("openai-proj", 120, URLSAFE)
    key = "sk-" + "proj-" + b
    out.append(_s("openai_key", f"the OpenAI one is {key}.", key, b))
    b = body("openai-legacy", 48)
    key = "sk-" + b
    out.append(_s("openai_key", f"old key: {key}", key, b))

    akid = "AKIA" + body("akid", 16, UPPER_DIGITS)
    asid = "ASIA" + body("asid", 16, UPPER_DIGITS)
    out.append(_s("aws_access_key", f"aws creds {akid} for prod", akid))
    out.append(_s("aws_access_key", f"session key id {asid}", asid))
    sec = body("aws-secret-1", 40, B64)
    out.append(_s("aws_secret", f"export AWS_SECRET_ACCESS_KEY={sec}", sec))
    sec = body("aws-secret-2", 40, B64)
    out.append(_s("aws_secret", f"aws configure set aws_secret_access_key {sec}", sec))
    sec = body("aws-secret-3", 40, B64)
    out.append(_s("aws_secret", f"the pair is {akid} {sec} ok", sec))

    for prefix in ("ghp", "gho", "ghu", "ghs", "ghr"):
        b = body(f"github-{prefix}", 36)
        tok = prefix + "_" + b
        out.append(_s("github_token", f"git clone with {tok} works", tok, b))
    b = body("github-pat-a", 22) + "_" + body("github-pat-b", 59)
    tok = "github" + "_pat_" + b
    out.append(_s("github_token", f"GH fine-grained: {tok}", tok, b))

    for kind in "abprs":
        b = body(f"slack-{kind}", 24)
        tok = f"xox{kind}-" + body(f"slack-n-{kind}", 12, string.digits) + "-" + b
        out.append(_s("slack_token", f"slack bot {tok} posts", tok, b))

    b = body("bearer-1", 40, URLSAFE)
    out.append(_s("bearer", f"curl -H 'Authorization: Bearer {b}' https://api.example.com", b))
    b = body("bearer-2", 32)
    out.append(_s("bearer", f"send Bearer {b} to it", b))
    b = body("basic", 28, B64)
    out.append(_s("bearer", f"Authorization: Basic {b}", b))

    block, rows = _pem("RSA ", "rsa", 6)
    out.append(_s("private_key", f"my key:\n{block}\nthanks", block, rows))
    block, rows = _pem("OPENSSH ", "openssh", 4)
    out.append(_s("private_key", f"{block}", block, rows))
    block, rows = _pem("", "pkcs8", 3)
    cut = block[: block.index("-----END")]  # pasted without its end
    out.append(_s("private_key", f"part of it: {cut}", cut, rows))

    header = "eyJ" + body("jwt-h", 30, URLSAFE)
    payload = "eyJ" + body("jwt-p", 60, URLSAFE)
    sig = body("jwt-s", 43, URLSAFE)
    jwt = f"{header}.{payload}.{sig}"
    out.append(_s("jwt", f"the session cookie is {jwt} now", jwt, payload[3:] + sig))

    pw = body("db-password", 16)
    out.append(_s("assignment", f"DB_PASSWORD={pw} psql -h db", pw))
    pw = body("api-key", 24)
    out.append(_s("assignment", f"config has api_key: {pw}", pw))
    pw = body("flag-password", 14)
    out.append(_s("assignment", f"mysql --password {pw} --user root", pw))
    pw = body("json-secret", 30)
    out.append(_s("assignment", f'{{"client_secret": "{pw}"}}', pw))
    pw = body("quoted-1", 9) + " " + body("quoted-2", 9)
    out.append(_s("assignment", f"PASSWORD='{pw}' ./run", pw, pw.replace(" ", "")[:WINDOW]))

    pw = body("url-password", 18)
    out.append(_s("url_password", f"clone https://alice:{pw}@git.example.com/repo.git", pw))
    pw = body("pg-password", 20)
    out.append(_s("url_password", f"DATABASE_URL=postgres://app:{pw}@db.internal:5432/x", pw))
    return out


# Ordinary text that must come out exactly as it went in.
HARMLESS = [
    "Please refactor the session tracker so that idle sessions end after five minutes.",
    "Read /home/alice/projects/clauditor/clauditor/parsing/text.py and src/Main/App.java",
    "/Users/Alice/Projects2/Clauditor/Tests/X and C:\\Users\\bob\\Desktop\\notes.txt",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it (see 3f78685)",
    "session 123e4567-e89b-12d3-a456-426614174000 and 9f1c2d3e-4b5a-6789-0abc-def012345678",
    "the task-runner and desk-assistant handle risk-averse users; ask-me-anything",
    "the key is in the drawer, and the token was a metaphor",
    "token_count = 5; max_tokens=4096; input_tokens: 1200; key_path=/etc/ssh/id_ed25519",
    "def count(token_count: int, api_key: str) -> None: return",
    "Bearer authentication is explained in RFC 6750.",
    "the secret to good code is tests; password managers are great",
    "PWD=/home/alice OLDPWD=/tmp cd -",
    "git log --oneline main..secrets | head; ls -la ~/.ssh",
    "https://docs.example.com/guide/install#step-2 and http://localhost:8080/api",
    "ThisIsAVeryLongCamelCaseIdentifierName12 getUserAccountSettingsByIdentifier2Async",
    "export PATH=$HOME/bin:$PATH; TOKEN=$GITHUB_TOKEN make",
    "api_key = os.environ['OPENAI_API_KEY'] and token = get_token()",
    "AKIA is the prefix of an AWS key id; sk- starts OpenAI keys",
    "password: ******** and secret: <your-secret-here>",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    # Code, as pasted into a prompt: names with `key` or `token` are not all secrets.
    "merged.sort(key=lambda s: s['last_activity_at'] or '', reverse=True)",
    "def _warm(line: CacheLine | None, key: CacheKey, t: float) -> bool:",
    "attrs = {n.LLM_TOKEN_COUNT_PROMPT: total_input, 'x': 1}",
    'env = {"ANTHROPIC_API_KEY": FAKE_KEY, "bearer token": BEARER}',
    'value = pb.HeaderValue(key=":path", raw_value=b"/v1/messages")',
    "client = Client(token=token, api_key=api_key)",
    'OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer <token>"',
    "After a run with an `Authorization: Bearer` token on every request",
]
