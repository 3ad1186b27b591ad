"""SignalEngine: computes every request's RequestSignals and keeps session and global state.

The tracker calls it at three points of each exchange, after its own bookkeeping:
- request_parsed: remember what the cache key needs (model, effort, tool list, TTL asked),
  the 1M beta and max_tokens; spot Claude Code's client-side fallback; a continuation
  turn confirms a pending compaction (learning the threshold).
- response_started: merge the quota headers into the session's and the global view.
- exchange_finished: cost, cache status, context, fallback, latency and error label of the
  request (record.signals); session totals (session.signals), the turn's cost, and the
  global daily cost, weekly tokens and error counts.
Per-session state is SessionSignals (sessions.models); global state lives here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from clauditor.clock import Clock, iso
from clauditor.domain.events import QuotaHeaders
from clauditor.money import usd
from clauditor.parsing.fold import MessageResult
from clauditor.parsing.request import ParsedRequest
from clauditor.sessions.models import (
    CacheLine,
    Compaction,
    CostByClass,
    PendingCompaction,
    RequestRecord,
    Session,
    SessionSignals,
    TokenCounts,
    Turn,
    add_classes,
    add_cost,
)
from clauditor.sessions.signals.cache import (
    MISSES,
    CacheKey,
    classify,
    rewritten_tokens,
    thread_of,
    ttl_in_force,
)
from clauditor.sessions.signals.context import (
    GROWTH_TURNS,
    CompactionThresholds,
    default_threshold,
    growth_per_turn,
    turns_to_compact,
)
from clauditor.sessions.signals.drift import DriftCheck
from clauditor.sessions.signals.errors import error_category
from clauditor.sessions.signals.fallback import Fallback, client_fallback, response_fallback
from clauditor.sessions.signals.prices import (
    PER_TOKENS,
    PriceTable,
    normalize_model,
    packaged_prices,
)
from clauditor.sessions.signals.quota import QuotaView, parse_quota
from clauditor.sessions.signals.weekly import WeeklyTokens, week_start

FACTS_KEPT = 10_000  # exchanges between parse and finish; more means finishes were lost
DAYS_KEPT = 62
COMPACTIONS_KEPT = 50
# A continuation seen before any compaction request confirms one parsed this soon after.
ORPHAN_CONTINUATION_SECONDS = 30.0
# Two reports of one quota window whose resets differ by more than this are two periods.
QUOTA_SAME_PERIOD_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the signals need from a request, kept from its parse to its finish."""

    kind: str
    model: str | None
    effort: str | None = None
    tools_digest: str = ""
    ttl_asked: int = 300
    context_1m: bool = False
    max_tokens: int | None = None


def _iteration_tokens(it: dict[str, Any]) -> TokenCounts:
    def n(key: str, src: dict[str, Any] = it) -> int:
        v = src.get(key)
        return v if type(v) is int and v >= 0 else 0

    cc = it.get("cache_creation")
    return TokenCounts(
        input=n("input_tokens"),
        output=n("output_tokens"),
        cache_read=n("cache_read_input_tokens"),
        cache_creation=n("cache_creation_input_tokens"),
        cache_creation_1h=n("ephemeral_1h_input_tokens", cc) if isinstance(cc, dict) else 0,
    )


def _total(by_class: CostByClass | None) -> float | None:
    return None if by_class is None else sum(by_class.values())


def _tokens_per_second(r: RequestRecord) -> float | None:
    """Output tokens over the generation time: first token to end when streamed."""
    if r.tokens.output <= 0 or r.ended_at is None or r.error_type is not None:
        return None
    start = r.first_token_at if r.stream and r.first_token_at is not None else r.started_at
    seconds = r.ended_at - start
    return round(r.tokens.output / seconds, 3) if seconds > 0 else None


class SignalEngine:
    def __init__(
        self,
        clock: Clock,
        prices: PriceTable | None = None,
        *,
        weekly_token_budget: int | None = None,
    ) -> None:
        self.clock = clock
        self.prices = prices if prices is not None else packaged_prices()
        self.thresholds = CompactionThresholds()
        self.weekly = WeeklyTokens(weekly_token_budget)
        self.quota: QuotaView | None = None  # newest merged view, account-wide
        self.daily_cost: dict[str, float] = {}  # UTC day (YYYY-MM-DD) -> USD, priced only
        self.daily_unpriced: dict[str, int] = {}  # UTC day -> requests left unpriced
        self.errors_by_type: Counter[str] = Counter()
        self.compactions = 0
        self.fallbacks = 0
        self.drift = DriftCheck(self.prices)
        self._facts: dict[int, RequestFacts] = {}

    # -- tracker hooks ------------------------------------------------------------------
    def request_parsed(self, session: Session, record: RequestRecord, req: ParsedRequest) -> None:
        self._facts[record.exchange_id] = RequestFacts(
            kind=record.kind,
            model=req.model,
            effort=req.effort,
            tools_digest=req.tools_digest,
            ttl_asked=req.cache_ttl_seconds,
            context_1m=req.context_1m,
            max_tokens=req.max_tokens,
        )
        if len(self._facts) > FACTS_KEPT:
            del self._facts[next(iter(self._facts))]
        if req.ok:
            self.drift.request(session, req)
        if not req.ok or req.kind not in ("main", "compaction"):
            return
        s = session.signals
        fb = client_fallback(
            record.retry, record.turn_index, req.model, s.last_main_turn, s.last_main_model
        )
        if fb is not None:
            self._mark_fallback(s, record, fb)
        s.last_main_model, s.last_main_turn = req.model, record.turn_index
        if req.kind == "compaction":
            s.compaction_exchange, s.continued_early = record.exchange_id, None
            orphan, s.continued_unmatched = s.continued_unmatched, None
            if orphan is not None and self.clock.now() - orphan[0] <= ORPHAN_CONTINUATION_SECONDS:
                # Its continuation came first: a lagging core opened this compaction's
                # side stream after the next request's.
                s.continued_early = orphan[1]
        elif s.pending_compaction is not None:
            if req.continued:
                self._confirm_compaction(s, req.manual_compact)
            else:
                s.pending_compaction = None  # the compaction did not take
        elif req.continued and s.compaction_exchange is not None:
            # Side streams are not ordered: the compaction's end may still be on its way.
            s.continued_early = req.manual_compact
        elif req.continued:
            # ...or even its request, for a while.
            s.continued_unmatched = (self.clock.now(), req.manual_compact)

    def response_started(
        self, session: Session, record: RequestRecord, quota: QuotaHeaders, ts: float
    ) -> None:
        view = parse_quota(quota.values, ts)
        if view is None:
            return
        self._attribute_quota(session, view)
        if self.quota is None:
            self.quota = view.copy()
        else:
            self.quota.merge(view)
        s = session.signals
        if s.quota is None:
            s.quota = view
        else:
            s.quota.merge(view)

    def _attribute_quota(self, session: Session, view: QuotaView) -> None:
        """Each rise of a window's account-wide utilization since the previous response
        seen (of any session) goes to the session whose response reported it. An estimate:
        the headers say how full the window is, not who filled it, and use from elsewhere
        (claude.ai, another machine) lands on whichever session reports next. A new window
        period (its reset moved) starts over from the value it reports."""
        before = self.quota.windows if self.quota is not None else {}
        for name, window in view.windows.items():
            prior = before.get(name)
            if window.utilization is None or prior is None or prior.utilization is None:
                continue
            if (
                window.reset_at is not None
                and prior.reset_at is not None
                and abs(window.reset_at - prior.reset_at) > QUOTA_SAME_PERIOD_SECONDS
            ):
                continue
            rise = window.utilization - prior.utilization
            if rise > 0:
                share = session.signals.quota_share
                share[name] = share.get(name, 0.0) + rise

    def exchange_finished(
        self, session: Session, record: RequestRecord, turn: Turn | None, result: MessageResult
    ) -> None:
        facts = self._facts.pop(record.exchange_id, None) or RequestFacts(
            record.kind, record.model_requested, max_tokens=record.max_tokens
        )
        s = session.signals
        sig = record.signals
        end = record.ended_at if record.ended_at is not None else self.clock.now()
        billed = record.model_responded or record.model_requested
        self.drift.response(session, record.model_responded, result)

        # Priced at the rates in force when the request was made.
        sig.cost_by_class = self._cost(billed, record.tokens, result, record.started_at)
        sig.cost_usd = _total(sig.cost_by_class)
        if not record.aborted_tokens.empty:
            sig.aborted_cost_usd = _total(
                self._cost(billed, record.aborted_tokens, result, record.started_at)
            )
            s.aborted_cost_usd = add_cost(s.aborted_cost_usd, sig.aborted_cost_usd)
        if sig.cost_usd is None:
            s.unpriced_requests += 1
            if turn is not None:
                turn.unpriced_requests += 1
        else:
            s.cost_usd = add_cost(s.cost_usd, sig.cost_usd)
            s.cost_by_class = add_classes(s.cost_by_class, sig.cost_by_class)
            if record.kind == "subagent":
                s.subagent_cost_usd = add_cost(s.subagent_cost_usd, sig.cost_usd)
            else:
                s.main_cost_usd = add_cost(s.main_cost_usd, sig.cost_usd)
            if turn is not None:
                turn.cost_usd = add_cost(turn.cost_usd, sig.cost_usd)
                turn.cost_by_class = add_classes(turn.cost_by_class, sig.cost_by_class)
        self._add_daily(end, sig.cost_usd)
        self.weekly.add(end, record.tokens)

        sig.error_category = error_category(record.status, record.error_type)
        if sig.error_category is not None:
            s.errors_by_type[sig.error_category] += 1
            self.errors_by_type[sig.error_category] += 1

        sig.output_tokens_per_second = _tokens_per_second(record)
        if record.error_type is None and record.stream and record.ttft_ms is not None:
            s.ttft_ms.append(record.ttft_ms)

        model = facts.model or record.model_requested
        if model:
            sig.context_window = self.prices.context_window(model, facts.context_1m)
            self._cache(s, record, facts, model, billed, end)
        else:
            sig.context_window = None
        if facts.kind == "main" and model:
            self._context(s, record, facts, model)
        elif facts.kind == "compaction":
            self._compaction_finished(s, record, model, end)

        if record.error_type is None and record.model_responded is not None:
            fb = response_fallback(
                record.model_requested,
                record.model_responded,
                result.usage.iterations,
                result.fallback_blocks,
            )
            if fb is not None:
                self._mark_fallback(s, record, fb)

    # -- cost ---------------------------------------------------------------------------
    def _cost(
        self, model: str | None, tokens: TokenCounts, result: MessageResult, at: float
    ) -> CostByClass | None:
        """By token class; each attempt at its own model's rate when usage.iterations spans
        several models. None when a model is not in the catalog."""
        geo = result.usage.inference_geo
        its = result.usage.iterations
        models = {normalize_model(str(i.get("model") or model or "")) for i in its}
        if len(models) <= 1:
            return self.prices.cost_by_class(model, tokens, at, geo)
        total: CostByClass | None = None
        for it in its:
            it_model = it.get("model")
            part = self.prices.cost_by_class(
                it_model if isinstance(it_model, str) else model, _iteration_tokens(it), at, geo
            )
            if part is None:
                return None
            total = add_classes(total, part)
        return total

    def _add_daily(self, ts: float, usd: float | None) -> None:
        day = (iso(ts) or "")[:10]
        if usd is None:
            self.daily_unpriced[day] = self.daily_unpriced.get(day, 0) + 1
        else:
            self.daily_cost[day] = self.daily_cost.get(day, 0.0) + usd
        for kept in (self.daily_cost, self.daily_unpriced):
            if len(kept) > DAYS_KEPT:
                del kept[min(kept)]

    def daily_cost_view(self) -> dict[str, float | None]:
        """USD per UTC day; None for a day none of whose requests could be priced."""
        days = sorted(self.daily_cost.keys() | self.daily_unpriced.keys())
        return {d: usd(self.daily_cost.get(d)) for d in days}

    # -- cache --------------------------------------------------------------------------
    def _cache(
        self,
        s: SessionSignals,
        record: RequestRecord,
        facts: RequestFacts,
        model: str,
        billed: str | None,
        end: float,
    ) -> None:
        t = record.reported_tokens  # an aborted attempt still read and wrote the cache
        thread = thread_of(facts.kind)
        key = CacheKey(model, facts.effort, facts.tools_digest)
        line = s.cache_lines.get((thread, model))
        last = s.last_line.get(thread)
        status = classify(t.cache_read, t.cache_creation, key, record.started_at, line, last)
        if status is None:
            return
        ttl = ttl_in_force(facts.ttl_asked, t.cache_creation_1h)
        cached = t.cache_read + t.cache_creation
        before = line
        if status == "miss_thrash" and last is not None and last is not line:
            before = last  # thrash off another model's (or key's) cache: what it held
        price = self.prices.lookup(billed)
        rebuild = waste = None
        if price is not None:
            rates = price.rates_for(t.total_input, record.started_at)
            rebuild = cached * rates.write(ttl) / PER_TOKENS
            if status in MISSES:
                rewritten = rewritten_tokens(status, t.cache_read, t.cache_creation, before)
                waste = rewritten * (rates.write(ttl) - rates.cache_read) / PER_TOKENS
        sig = record.signals
        sig.cache_status = status
        sig.cache_ttl_seconds = ttl
        sig.cache_expires_at = end + ttl
        sig.cache_rebuild_cost_usd = rebuild
        sig.cache_miss_waste_usd = waste
        new = CacheLine(thread, model, facts.effort, facts.tools_digest, end, ttl, cached, rebuild)
        s.cache_lines[(thread, model)] = new
        s.last_line[thread] = new
        s.cache_statuses[status] += 1
        if waste:
            s.cache_miss_waste_usd += waste
        if thread == "main":
            s.cache_status = status

    # -- context and compaction ----------------------------------------------------------
    def _context(
        self, s: SessionSignals, record: RequestRecord, facts: RequestFacts, model: str
    ) -> None:
        total = record.tokens.total_input
        window = record.signals.context_window
        if total <= 0 or not window:
            return
        fill = total / window
        record.signals.context_fill = fill
        family = normalize_model(model)
        s.context_window, s.context_tokens, s.context_fill = window, total, fill
        s.context_peak = fill if s.context_peak is None else max(s.context_peak, fill)
        s.context_model = family
        learned = self.thresholds.learned(family)
        s.threshold_learned = learned is not None
        s.compaction_threshold = (
            learned if learned is not None else default_threshold(window, facts.max_tokens)
        )
        if record.error_type is None and record.stop_reason not in (None, "tool_use"):
            s.turn_end_contexts.append(total)  # the turn ended here
            del s.turn_end_contexts[: -(GROWTH_TURNS + 1)]
        s.turns_to_compact = turns_to_compact(
            total, s.compaction_threshold, growth_per_turn(s.turn_end_contexts)
        )

    def _compaction_finished(
        self, s: SessionSignals, record: RequestRecord, model: str | None, end: float
    ) -> None:
        """A compaction request ended: pending until a continuation turn confirms it. Its
        input (the whole conversation it summarised) is the context that triggered it."""
        early = s.continued_early if s.compaction_exchange == record.exchange_id else None
        if s.compaction_exchange == record.exchange_id:
            s.compaction_exchange, s.continued_early = None, None
        context = record.tokens.total_input
        if record.error_type is not None or not model or context <= 0:
            return
        # A re-asked compaction (its first summary lacked the tags) replaces the pending
        # one: one compaction, confirmed once.
        s.pending_compaction = PendingCompaction(
            normalize_model(model), end, context, record.tokens.output, record.turn_index
        )
        if early is not None:
            self._confirm_compaction(s, early)

    def _confirm_compaction(self, s: SessionSignals, manual: bool) -> None:
        pending = s.pending_compaction
        if pending is None:
            return
        s.pending_compaction = None
        s.compactions += 1
        s.compacted_at.append(pending.at)
        del s.compacted_at[:-COMPACTIONS_KEPT]
        self.compactions += 1
        s.confirmed.append(
            Compaction(
                pending.model,
                pending.at,
                pending.context_tokens,
                pending.summary_tokens,
                pending.turn_index,
                "manual" if manual else "auto",
            )
        )
        if not manual:
            # Only Claude Code's own compactions say where its threshold is: a typed
            # /compact can come at any size.
            self.thresholds.learn(pending.model, pending.context_tokens)
        s.turn_end_contexts.clear()
        s.turns_to_compact = None
        # The summary opens a new conversation (and system prompt): a new cache, not a miss.
        for key in [k for k in s.cache_lines if k[0] == "main"]:
            del s.cache_lines[key]
        s.last_line.pop("main", None)

    # -- fallback -----------------------------------------------------------------------
    def _mark_fallback(self, s: SessionSignals, record: RequestRecord, fb: Fallback) -> None:
        sig = record.signals
        if sig.fallback:
            return  # one fallback per request, the first reason found
        sig.fallback = True
        sig.fallback_kind = fb.kind
        sig.fallback_requested = fb.requested
        sig.fallback_actual = fb.actual
        s.fallback_from = fb.requested or record.model_requested
        s.fallback_to = fb.actual or record.model_responded
        s.fallbacks += 1
        self.fallbacks += 1

    # -- global views -------------------------------------------------------------------
    def week_start(self) -> float:
        return week_start(self.clock.now())

    def seed_week(self, tokens: TokenCounts) -> None:
        """The tokens the store counted since week_start() (at core start)."""
        self.weekly.seed(tokens, self.clock.now())

    def learned_thresholds(self) -> dict[str, int | None]:
        """Model family -> the compaction threshold learned from the wire."""
        return {m: self.thresholds.learned(m) for m in sorted(self.thresholds.observed)}

    def quota_view(self) -> dict[str, Any] | None:
        return self.quota.as_api() if self.quota is not None else None

    def weekly_view(self) -> dict[str, Any]:
        return self.weekly.view(self.clock.now())

    def view(self) -> dict[str, Any]:
        """Global state for the API (/api/summary) and telemetry."""
        return {
            "quota": self.quota_view(),
            "weekly": self.weekly_view(),
            "daily_cost_usd": self.daily_cost_view(),
            "errors_by_type": dict(self.errors_by_type),
            "compactions": self.compactions,
            "fallbacks": self.fallbacks,
            "compaction_thresholds": self.learned_thresholds(),
            "drift": self.drift.view(),
            "prices": self.prices.source,
        }
