"""Drift: what Claude Code sent that clauditor was not verified against.

clauditor's rules (what a turn is, which request is a subagent's, what costs what) were
checked against the real CLI of each version in clauditor/data/claude_code.json. A request
from another version, or one carrying a model the catalog does not know, a beta, top-level
body key or x-claude-code-* header outside the verified vocabulary, or a response with an
SSE event or content-block type outside it, is drift: counted by kind (/api/stats,
clauditor_drift_total), logged once per value, and it marks the session `verified: false`
with a reason. Next month's Claude Code shows as "unverified", not as wrong numbers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from clauditor.claude_code import WireVocabulary, vocabulary
from clauditor.parsing.fold import MessageResult
from clauditor.parsing.request import ParsedRequest
from clauditor.sessions.models import Session, TokenCounts
from clauditor.sessions.signals.prices import PriceTable

log = logging.getLogger(__name__)

DRIFT_KINDS = (
    "version",
    "model",
    "beta",
    "body_key",
    "header",
    "sse_event",
    "content_block",
    "usage",  # token counts no model allows: garbage or forged, never billed
)
MAX_OUTPUT_TOKENS = 1_000_000  # far above any model's output limit (128k in 2026)
REASONS_KEPT = 20  # per session
LOGGED_KEPT = 1000  # distinct (kind, value) pairs logged once


class DriftCheck:
    def __init__(self, prices: PriceTable, vocab: WireVocabulary | None = None) -> None:
        self.prices = prices
        self.vocab = vocab if vocab is not None else vocabulary()
        self.counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def request(self, session: Session, req: ParsedRequest) -> None:
        v = self.vocab
        if req.cc_version and req.cc_version not in v.verified_versions:
            self._flag(session, "version", req.cc_version)
        if req.model and not self.prices.known(req.model):
            self._flag(session, "model", req.model)
        self._unknown(session, "beta", req.betas, v.betas)
        self._unknown(session, "body_key", req.body_keys, v.body_keys)
        self._unknown(session, "header", req.cc_headers, v.headers)

    def response(self, session: Session, model: str | None, result: MessageResult) -> None:
        if model and not self.prices.known(model):
            self._flag(session, "model", model)
        self._unknown(session, "sse_event", result.unknown_event_types, self.vocab.sse_events)
        self._unknown(session, "content_block", result.block_types, self.vocab.content_blocks)

    def implausible(self, session: Session, model: str | None, tokens: TokenCounts) -> bool:
        """Usage beyond what the model (or any model) allows: flagged, not billed. The
        window with the 1M beta bounds the prompt; an unknown model gets the largest."""
        window = self.prices.context_window(model, context_1m=True) or self.prices.max_window
        too_long = tokens.total_input > window or tokens.output > MAX_OUTPUT_TOKENS
        if too_long:
            self._flag(session, "usage", "beyond the model's limits (left out of the totals)")
        return too_long

    def view(self) -> dict[str, int]:
        return {kind: self.counts[kind] for kind in DRIFT_KINDS if self.counts[kind]}

    def _unknown(
        self, session: Session, kind: str, values: Iterable[str], known: frozenset[str]
    ) -> None:
        for value in values:
            if value not in known:
                self._flag(session, kind, value)

    def _flag(self, session: Session, kind: str, value: str) -> None:
        self.counts[kind] += 1
        reason = f"{kind} {value}"
        reasons = session.unverified_reasons
        if reason not in reasons and len(reasons) < REASONS_KEPT:
            reasons.append(reason)
        key = (kind, value)
        if key not in self._logged and len(self._logged) < LOGGED_KEPT:
            self._logged.add(key)
            newest = self.vocab.newest_verified
            log.warning(
                "Claude Code drift: %s %r is not in what clauditor was verified against "
                "(Claude Code up to %s); sessions carrying it are marked unverified",
                kind.replace("_", " "),
                value,
                newest,
            )
