"""Secrets out of display text: well-known credential shapes become `[redacted:kind]`.

Everything clauditor keeps of what a user typed or a model wrote (the cleaned prompt, the
reply summary, tool input summaries) passes through `redact` before it is stored, indexed
for recall, broadcast on /watch or exported in a span. Pure: no I/O, no clock.

Each rule is a regex with bounded quantifiers, anchored by a look-behind so that a long
run of token characters is tried once, not from each of its positions; a match is then
stretched over the rest of its token with a bounded loop, so a secret longer than a
pattern's bound is never half shown. Every pass is linear in the text.

The aim is what a person pastes by accident (API keys, cloud credentials, tokens, private
keys, passwords in assignments or URLs) without mangling ordinary text: paths, git SHAs,
UUIDs, identifiers such as `token_count` and prose stay as they are.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable

__all__ = ["MARKER_PREFIX", "marker", "redact"]

MARKER_PREFIX = "[redacted:"

# The longest stretch one match may swallow past its pattern (a whole token's tail).
_TAIL_MAX = 16384
# A private key block is at most a few KB; an END marker further away than this is not
# that block's end, and everything after a BEGIN with no END is treated as the key.
_PEM_MAX = 65536


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


# -- shape checks used by several rules ----------------------------------------------------

_CAMEL = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|[a-z]+|[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _looks_random(s: str) -> bool:
    """Mixed case and digits in short runs, unlike words, CamelCase names or paths."""
    if not (any(c.isdigit() for c in s) and any(c.isupper() for c in s)):
        return False
    if not any(c.islower() for c in s) or _HEX.fullmatch(s):
        return False
    words = _CAMEL.findall(s)
    if not words:
        return False
    # Random base64 switches class every ~2 chars; identifiers and paths are words.
    return sum(len(w) for w in words) / len(words) < 3.5


# -- the rules -----------------------------------------------------------------------------

# (pattern, kind, group replaced (0: the whole match), tail charset, check of the value)
_Check = Callable[[str], bool]


class _Rule:
    __slots__ = ("check", "fold", "group", "kind", "needle", "pattern", "tail")

    def __init__(
        self,
        pattern: str,
        kind: str,
        *,
        needle: str,
        group: int = 0,
        tail: str | None = None,
        check: _Check | None = None,
        flags: int = 0,
    ) -> None:
        self.pattern = re.compile(pattern, flags)
        self.kind = kind
        self.group = group
        # A token may be longer than the pattern's bound: its tail goes too.
        self.tail = re.compile(f"[{tail}]{{1,{_TAIL_MAX}}}") if tail else None
        self.check = check
        # A substring every match holds: without it the pass is skipped (C-speed find).
        self.needle = needle.lower() if flags & re.IGNORECASE else needle
        self.fold = bool(flags & re.IGNORECASE)


def _has_digit(s: str) -> bool:
    return any(c.isdigit() for c in s)


def _bearer_value(s: str) -> bool:
    # "Bearer authentication" is prose; a token has digits or random-looking case.
    return _has_digit(s) or _looks_random(s) or (len(s) >= 20 and s != s.lower())


def _legacy_openai(s: str) -> bool:
    body = s[3:]
    return _has_digit(body) and any(c.isalpha() for c in body)


_TOKEN = "A-Za-z0-9_-"

# Rules that open with a literal check the character before it with a look-behind placed
# after the literal, so the regex engine can still jump from one literal to the next.
_RULES_SHAPES: tuple[_Rule, ...] = (
    _Rule(
        r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{4,4096}\.eyJ[A-Za-z0-9_-]{4,8192}\.",
        "jwt",
        needle="eyJ",
        tail=_TOKEN,
    ),
    _Rule(
        r"sk-ant-(?<![A-Za-z0-9_-]sk-ant-)[A-Za-z0-9_-]{16,512}",
        "anthropic_key",
        needle="sk-ant-",
        tail=_TOKEN,
    ),
    _Rule(
        r"sk-(?<![A-Za-z0-9_-]sk-)(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{16,512}",
        "openai_key",
        needle="sk-",
        tail=_TOKEN,
    ),
    _Rule(
        r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9]{20,512}(?![A-Za-z0-9_-])",
        "openai_key",
        needle="sk-",
        check=_legacy_openai,
    ),
    _Rule(
        r"gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{30,255}",
        "github_token",
        needle="gh",
        tail="A-Za-z0-9_",
    ),
    _Rule(
        r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{30,255}",
        "github_token",
        needle="github_pat_",
        tail="A-Za-z0-9_",
    ),
    _Rule(
        r"xox[abposr]-(?<![A-Za-z0-9_-]xox[abposr]-)[A-Za-z0-9-]{10,255}",
        "slack_token",
        needle="xox",
        tail="A-Za-z0-9-",
    ),
    _Rule(
        r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9])", "aws_access_key", needle="IA"
    ),
    # scheme://user:password@host: only the password goes; '@' may sit in the password,
    # so the greedy run backs off to the last '@' before the path (bounded).
    _Rule(
        r"://[^\s/?#@:\"'<>]{0,256}:([^\s/?#\"'<>]{1,256})@", "url_password", group=1, needle="://"
    ),
    _Rule(
        r"(?<![A-Za-z0-9_-])bearer\s{1,8}([A-Za-z0-9._~+/=-]{8,4096})",
        "bearer",
        group=1,
        needle="bearer",
        tail="A-Za-z0-9._~+/=-",
        check=_bearer_value,
        flags=re.IGNORECASE,
    ),
    # A named AWS secret, with or without a separator (`aws configure set
    # aws_secret_access_key X`, `"SecretAccessKey": "X"`).
    _Rule(
        r"(?<![A-Za-z0-9])(?:aws_?)?secret_?access_?key[\"']?\s{0,3}[:=]?\s{0,3}[\"']?"
        r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        "aws_secret",
        group=1,
        needle="access",
        flags=re.IGNORECASE,
    ),
)

# -- Authorization headers -------------------------------------------------------------------

_AUTH = re.compile(
    r"(?<![A-Za-z0-9_-])(?:proxy-)?authorization[\"']?\s{0,4}[:=]\s{0,4}[\"']?"
    r"([^\s\"'`,;]{1,4096})(?:(\s{1,4})([^\s\"'`,;]{1,4096}))?",
    re.IGNORECASE,
)


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


_AUTH_SCHEMES = _words(
    "basic bearer token digest negotiate ntlm hoba mutual apikey aws4-hmac-sha256 sso-key key otp"
)

# -- NAME=value / NAME: value / --name value ----------------------------------------------------

# Words of a name that say it holds a secret; compounds written as one word too.
_SECRET_WORDS = _words(
    "key apikey secret token password passwd pwd pass passphrase credential credentials creds"
    " auth authorization pat cookie privatekey secretkey accesskey sessionkey"
) | frozenset(
    p + w
    for p in _words(
        "api access secret private auth client refresh session bearer id master admin root db"
        " app bot deploy signing encryption webhook service user oauth github gh npm pypi slack"
        " stripe hf"
    )
    for w in ("key", "token", "secret", "password", "pass", "pwd")
)
# A last word that says the value is about the secret, not the secret: token_count, key_path.
_DESCRIPTORS = _words(
    "count counts type types name names id ids path paths file files dir url uri len length"
    " size limit limits max min index idx field fields env var header headers format kind mode"
    " usage budget prefix suffix label location ttl expiry expires timeout source provider"
    " helper command cmd policy endpoint host region version scope scopes status required"
    " enabled rotation algorithm alg method style store storage fn func map list set schema"
    " bits hint"
)
# Values that are never the secret itself.
_NOT_SECRET = _words(
    "true false null none nil yes no on off str string int bytes bool boolean float number"
    " optional any list dict object undefined required empty redacted env unset default"
)
_NAME_SPLIT = re.compile(r"[_.\-]+|(?<=[a-z0-9])(?=[A-Z])")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,8}")

# Name and separator first, the value only for a secret-sounding name. The name must hold
# a keyword within its first 40 chars (a bounded look-ahead), so text full of `a=a=` or of
# ordinary words is rejected by the regex engine, one short test per word start.
_KEYWORD = r"(?:key|secret|token|pass|pwd|credential|creds|auth|cookie|pat)"
_ASSIGN = re.compile(
    r"(?=[A-Za-z_])(?<![A-Za-z0-9_.$-])(?=[A-Za-z0-9_.-]{0,40}?" + _KEYWORD + r")"
    r"([A-Za-z_][A-Za-z0-9_.-]{0,63})(?:\\?[\"'])?\s{0,3}(?::=|:|=)(?![=>~])\s{0,3}",
    re.IGNORECASE,
)
_FLAG = re.compile(
    r"--(?<![A-Za-z0-9_-]--)(?=[A-Za-z0-9_-]{0,40}?" + _KEYWORD + r")"
    r"([A-Za-z][A-Za-z0-9_-]{0,63})(?:=|\s{1,3}(?!-))",
    re.IGNORECASE,
)
_VALUE = re.compile(
    r"(?:\\?[\"'])?"  # an opening quote, maybe JSON-escaped
    r"(?:([^\s\"'`,;&<>(){}\[\]=][^\s\"'`,;&(){}\[\]]{0,511})"  # a bare value
    r"|(?<=[\"'])([^\"'\r\n]{1,512}))"  # or the inside of the quotes (spaces allowed)
)
_QUOTED_TAIL = re.compile(f"[^\"'\\r\\n]{{1,{_TAIL_MAX}}}")
_BARE_TAIL = re.compile(f"[^\\s\"'`,;&(){{}}\\[\\]]{{1,{_TAIL_MAX}}}")


@functools.lru_cache(maxsize=512)  # names repeat (a .env file, a hostile text of `key:`)
def _secret_name(name: str) -> bool:
    if name.upper() in ("PWD", "OLDPWD"):  # the shell's working directory, not a password
        return False
    words = [w.lower() for w in _NAME_SPLIT.split(name) if w]
    # Authorization headers have their own rule, which keeps the scheme readable.
    if not words or words[-1] in _DESCRIPTORS or words[-1] == "authorization":
        return False
    if "public" in words:  # public_key=ssh-rsa ...: not a secret
        return False
    if words == ["key"]:  # sort(key=...), {"key": ...}, key: CacheKey: code, not a secret
        return False
    return any(w in _SECRET_WORDS for w in words)


@functools.lru_cache(maxsize=512)
def _assignment_kind(name: str, value_len: int) -> str:
    # A 40-char base64 value under an AWS secret's name is that secret.
    words = {w.lower() for w in _NAME_SPLIT.split(name)}
    aws = "secret" in words and ("aws" in words or value_len == 40)
    return "aws_secret" if aws else "assignment"


def _placeholder(v: str) -> bool:
    """A reference, a template or an already masked value: `$TOKEN`, `<token>`, `****`."""
    if v[0] in "$%<{*" or v.startswith(("...", "…")):
        return True
    return set(v) <= set("*xX.•-_")


def _secret_value(value: str) -> bool:
    v = value.strip()
    if len(v) < 3 or v.startswith(MARKER_PREFIX) or v.lower() in _NOT_SECRET:
        return False
    if _placeholder(v) or (v.isdigit() and len(v) < 6):  # token_count=5, max_key=100
        return False
    return not _DOTTED.fullmatch(v)  # os.environ, settings.API_KEY: code, not a value


# Words that open an expression, not a literal value: `key=lambda s: ...`.
_CODE_WORDS = _words("lambda self this cls new function await async return not await yield typeof")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CAMEL_CASE = re.compile(r"[a-z][A-Za-z]*[A-Z]|[A-Z][a-z]+[A-Z]")


def _code_value(name: str, v: str, spaced: bool) -> bool:
    """An unquoted value that reads as code: a keyword, the name passed on (`token=token`),
    or, after a spaced separator (`name = v`, `name: v`, code and type annotations rather
    than `NAME=value` in a shell), an identifier with `_` or CamelCase (`total_input`,
    `FAKE_KEY`, `CacheKey`, `BEARER`) that does not look random."""
    if v in _CODE_WORDS or v.lower() == name.lower():
        return True
    if not spaced or not _IDENT.fullmatch(v) or _looks_random(v):
        return False
    return "_" in v or _CAMEL_CASE.match(v) is not None or (v.isalpha() and v.isupper())


# -- the engine ------------------------------------------------------------------------------


def _stretch(text: str, end: int, tail: re.Pattern[str] | None) -> int:
    """Extend a match over the rest of its token (bounded steps, each a bounded match)."""
    if tail is None:
        return end
    for _ in range(len(text) // _TAIL_MAX + 2):
        m = tail.match(text, end)
        if m is None:
            break
        end = m.end()
    return end


def _apply(rule: _Rule, text: str) -> str:
    if rule.needle not in (text.lower() if rule.fold else text):
        return text
    out: list[str] = []
    pos = keep = 0
    n = len(text)
    for _ in range(n + 1):  # each step moves pos forward
        m = rule.pattern.search(text, pos)
        if m is None:
            break
        start, end = m.span(rule.group)
        value = m.group(rule.group)
        if value.startswith(MARKER_PREFIX) or (rule.check is not None and not rule.check(value)):
            pos = m.start() + 1
            continue
        end = _stretch(text, end, rule.tail)
        out.append(text[keep:start])
        out.append(marker(rule.kind))
        keep = pos = max(end, m.start() + 1)
    if not out:
        return text
    out.append(text[keep:])
    return "".join(out)


_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# What a key body (and PEM headers such as `Proc-Type: 4,ENCRYPTED`) is made of.
_B64_BODY = frozenset(string.ascii_letters + string.digits + "+/=:-,\\ \t\r\n")


class _Finder:
    """The next match of a pattern at or after a position, searched again only once the
    last one is behind: many ENDs before one far BEGIN never rescan the rest of the text."""

    __slots__ = ("_done", "_found", "_pattern", "_text")

    def __init__(self, pattern: re.Pattern[str], text: str) -> None:
        self._pattern, self._text = pattern, text
        self._found: re.Match[str] | None = None
        self._done = False  # no match left after the last search

    def at(self, pos: int) -> re.Match[str] | None:
        if self._done or (self._found is not None and self._found.start() >= pos):
            return self._found if not self._done else None
        self._found = self._pattern.search(self._text, pos)
        self._done = self._found is None
        return self._found


def _private_keys(text: str) -> str:
    """BEGIN...END blocks; a BEGIN with no END (cut off) takes the rest of the text, and an
    END with no BEGIN (a tail that lost its start) takes the key body before it."""
    if "PRIVATE KEY" not in text:
        return text
    out: list[str] = []
    pos = keep = 0
    begins, ends = _Finder(_PEM_BEGIN, text), _Finder(_PEM_END, text)
    for _ in range(len(text) + 1):
        begin, end = begins.at(pos), ends.at(pos)
        if end is not None and (begin is None or end.start() < begin.start()):
            # An orphan END: walk back over the base64 body (bounded), then drop it.
            start = end.start()
            floor = max(keep, start - _PEM_MAX)
            while start > floor and text[start - 1] in _B64_BODY:
                start -= 1
            out.append(text[keep:start])
            out.append(marker("private_key"))
            keep = pos = end.end()
            continue
        if begin is None:
            break
        out.append(text[keep : begin.start()])
        out.append(marker("private_key"))
        limit = min(len(text), begin.end() + _PEM_MAX)
        if end is not None and end.start() >= begin.end() and end.end() <= limit:
            keep = pos = end.end()
            continue
        # No END within reach: the key was cut off, or the END is not this block's.
        keep = pos = len(text)
        break
    if not out:
        return text
    out.append(text[keep:])
    return "".join(out)


def _authorization(text: str) -> str:
    if "authorization" not in text.lower():
        return text
    out: list[str] = []
    pos = keep = 0
    for _ in range(len(text) + 1):
        m = _AUTH.search(text, pos)
        if m is None:
            break
        first, second = m.group(1), m.group(3)
        scheme = first.lower() in _AUTH_SCHEMES
        # "Basic <credentials>": the scheme stays readable; a scheme alone is prose.
        grp = 3 if scheme and second else 1
        value = m.group(grp)
        if (
            (scheme and not second)
            or value.startswith(MARKER_PREFIX)
            or len(value) < 4
            or _placeholder(value)
        ):
            pos = m.start() + 1
            continue
        start, end = m.span(grp)
        end = _stretch(text, end, _BARE_TAIL)
        out.append(text[keep:start])
        out.append(marker("bearer"))
        keep = pos = end
    if not out:
        return text
    out.append(text[keep:])
    return "".join(out)


def _assignments(pattern: re.Pattern[str], text: str) -> str:
    out: list[str] = []
    pos = keep = 0
    for _ in range(len(text) + 1):
        m = pattern.search(text, pos)
        if m is None:
            break
        name = m.group(1)
        v = _VALUE.match(text, m.end()) if _secret_name(name) else None
        value = (v.group(1) or v.group(2) or "") if v is not None else ""
        if v is None or not _secret_value(value):
            pos = m.start() + 1
            continue
        grp = 1 if v.group(1) is not None else 2
        start, end = v.span(grp)
        quoted = start > 0 and text[start - 1] in "\"'"
        end = _stretch(text, end, _QUOTED_TAIL if quoted else _BARE_TAIL)
        spaced = any(c.isspace() for c in text[m.end(1) : start])
        if (
            not quoted
            and (
                text[end : end + 1] in ("(", "[")  # get_key(...), os.environ[...]
                or _code_value(name, text[start:end], spaced)
            )
        ):
            pos = m.start() + 1
            continue
        out.append(text[keep:start])
        out.append(marker(_assignment_kind(name, len(value))))
        keep = pos = end
    if not out:
        return text
    out.append(text[keep:])
    return "".join(out)


# A 40-char base64 run standing alone: the shape of an AWS secret access key.
_AWS_SECRET_ALONE = _Rule(
    r"(?<![A-Za-z0-9/+=_.-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-])(?!\.[A-Za-z0-9])",
    "aws_secret",
    needle="",
    # Paths and CamelCase names of that length are words; a key is random.
    check=lambda s: _looks_random(s.replace("/", "").replace("+", "")),
)


def redact(text: str, *, truncated: bool = False) -> str:
    """`text` with every secret shape replaced by `[redacted:kind]`.

    `truncated`: the text is the start of something longer, so its last token may be the
    first half of a secret no rule can recognise any more: it is dropped.
    Never raises on a str; anything else gives "".
    """
    if not isinstance(text, str):
        return ""
    if not text:
        return text
    text = _private_keys(text)
    for rule in _RULES_SHAPES:
        text = _apply(rule, text)
    text = _authorization(text)
    text = _assignments(_ASSIGN, text)
    text = _assignments(_FLAG, text)
    text = _apply(_AWS_SECRET_ALONE, text)
    if truncated:
        text = _drop_last_word(text)
    return text


# Characters no token holds unquoted: the start of a cut-off token is right after one.
_DELIMS = frozenset("<>\"'`()[]{},;|")


def _drop_last_word(text: str) -> str:
    """Without the token the cut ended in (bounded walk back from the end). A run longer
    than _TAIL_MAX loses just its last _TAIL_MAX chars: any secret opening further back
    was long enough to be recognised whole."""
    i = len(text)
    floor = max(0, i - _TAIL_MAX)
    while i > floor and not text[i - 1].isspace() and text[i - 1] not in _DELIMS:
        i -= 1
    return text[:i].rstrip()
