"""Token usage of one response, read defensively and merged by Anthropic's overwrite rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_TOKENS = 1 << 53  # above this a "count" is garbage, not usage
MAX_ITERATIONS = 64

_USAGE_INTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    thinking_tokens: int = 0
    service_tier: str | None = None
    inference_geo: str | None = None  # data residency ("us" costs more)
    iterations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_input_tokens(self) -> int:
        """Anthropic's rule: cached reads and writes are input too."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


def _count(v: Any) -> int | None:
    """A token count, or None when v is not a sane non-negative int."""
    if type(v) is int and 0 <= v < MAX_TOKENS:
        return v
    return None


def _keep(v: Any) -> bool:
    # Iteration entries are ids and counts: no floats (inf), no huge ints, no nesting.
    return isinstance(v, (str, bool, type(None))) or _count(v) is not None


def _clean_iteration(it: dict[str, Any]) -> dict[str, Any]:
    """Scalars and one level of scalar dicts: enough for per-model billing, no garbage."""
    out: dict[str, Any] = {}
    for k, v in it.items():
        if _keep(v):
            out[k] = v
        elif isinstance(v, dict):
            out[k] = {ik: iv for ik, iv in v.items() if _keep(iv)}
    return out


def apply_usage(u: Usage, obj: Any) -> bool:
    """Overwrite u field by field with the non-null values of obj; False if anything was bad."""
    if obj is None:
        return True
    if not isinstance(obj, dict):
        return False
    ok = True
    for key in _USAGE_INTS:
        v = obj.get(key)
        if v is None:
            continue
        n = _count(v)
        if n is None:
            ok = False
        else:
            setattr(u, key, n)
    cc = obj.get("cache_creation")
    if isinstance(cc, dict):
        for key, attr in (
            ("ephemeral_5m_input_tokens", "cache_creation_5m_tokens"),
            ("ephemeral_1h_input_tokens", "cache_creation_1h_tokens"),
        ):
            v = cc.get(key)
            if v is not None:
                n = _count(v)
                if n is None:
                    ok = False
                else:
                    setattr(u, attr, n)
    elif cc is not None:
        ok = False
    details = obj.get("output_tokens_details")
    if isinstance(details, dict):
        v = details.get("thinking_tokens")
        if v is not None:
            n = _count(v)
            if n is None:
                ok = False
            else:
                u.thinking_tokens = n
    elif details is not None:
        ok = False
    tier = obj.get("service_tier")
    if isinstance(tier, str):
        u.service_tier = tier
    elif tier is not None:
        ok = False
    geo = obj.get("inference_geo")
    if isinstance(geo, str):
        u.inference_geo = geo[:32] or None
    elif geo is not None:
        ok = False
    its = obj.get("iterations")
    if isinstance(its, list):
        kept = [_clean_iteration(i) for i in its[:MAX_ITERATIONS] if isinstance(i, dict)]
        if len(kept) != len(its):
            ok = False
        u.iterations = kept
    elif its is not None:
        ok = False
    return ok
