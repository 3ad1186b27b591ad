"""Time to first byte, interleaved: the tail (p99) of what clauditor adds, with its noise floor.

    python -m benchmarks.ttfb                  # the run of docs/performance.md (~6 min)
    python -m benchmarks.ttfb --rounds 20      # a quick look

`benchmarks.latency` measures one setup after another, so a p99 there also measures
whatever else the machine did in that minute. Here every session sends the same request
to each setup in turn -- (a) the fake upstream, (b) plain Envoy, (b2) a second, identical
plain Envoy, (c) `clauditor up` -- in a new random order each round, so all setups
share the same moments of the machine's noise. (b2) - (b) is the noise floor: the
difference two identical proxies show on this machine; (c) - (b) is what clauditor adds.
Responses are short (the first byte is what is timed); request bodies are the latency
mix (50 KB - 2 MB), so the upload and the core's parse of it are both in the time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.latency import FULL_MIX, HOST, Sample, Stack, Target, exchange
from benchmarks.workload import Body, Shape, build_body, percentile, print_header, table
from clauditor.sim.claude import SyntheticSession

SETUPS = ("a", "b", "b2", "c")
EVENTS = 10  # per response: the first byte is what is measured
GAP_S = 0.05  # at least, between two requests of a session: sessions think
RATE = 80.0  # requests per second from all sessions together (--rate): ~50 MB/s of bodies


async def session(
    targets: Sequence[Target],
    bodies: Sequence[Body],
    index: int,
    rounds: int,
    concurrency: int,
    nonces: itertools.count[int],
    rng: random.Random,
    gap: float = GAP_S,
) -> list[Sample]:
    """One session, one keep-alive connection per setup; each round, one body sent to
    every setup in a shuffled order, `gap` seconds between two requests."""
    await asyncio.sleep((index * 0.037) % 0.5)
    conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    out: list[Sample] = []
    async with SyntheticSession(f"http://{HOST}:1") as client:
        for r in range(rounds):
            body = bodies[(index + r) % len(bodies)]
            order = list(targets)
            rng.shuffle(order)
            for target in order:
                sample = Sample(target.name, concurrency, body.size, EVENTS, 0.0, 0.0, False)
                try:
                    if target.name not in conns:
                        conns[target.name] = await asyncio.wait_for(
                            asyncio.open_connection(HOST, target.port, limit=1 << 22), 10
                        )
                    head = target.head(client, body.size)
                    ttfb, total, ok, keep = await asyncio.wait_for(
                        exchange(*conns[target.name], head, body.parts(next(nonces))), 30
                    )
                    sample.ttfb_ms, sample.total_ms, sample.ok = ttfb, total, ok
                    if not ok:
                        sample.error = "bad response"
                    if not (keep and ok):
                        conns.pop(target.name)[1].close()
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                    sample.error = type(e).__name__
                    if target.name in conns:
                        conns.pop(target.name)[1].close()
                out.append(sample)
                await asyncio.sleep(gap)
    for _, writer in conns.values():
        writer.close()
    return out


def summary(samples: list[Sample], levels: list[int]) -> str:
    rows: list[list[object]] = []
    for conc in levels:
        at = [s for s in samples if s.concurrency == conc]
        ttfb = {n: [s.ttfb_ms for s in at if s.setup == n and s.ok] for n in SETUPS}
        pct = {n: {q: percentile(v, q) for q in (50, 95, 99, 99.9)} for n, v in ttfb.items()}
        for name in SETUPS:
            ok = len(ttfb[name])
            row: list[object] = [conc, name, f"{ok}/{sum(1 for s in at if s.setup == name)}"]
            row += [pct[name][q] for q in (50, 95, 99, 99.9)]
            row += [
                pct[name][50] - pct["b"][50],
                pct[name][99] - pct["b"][99],
                pct[name][99.9] - pct["b"][99.9],
            ]
            rows.append(row)
    head = ["conc", "setup", "ok", "p50", "p95", "p99", "p99.9", "p50 - b", "p99 - b"]
    return table([*head, "p99.9 - b"], rows)


def by_body(samples: list[Sample], levels: list[int]) -> str:
    rows: list[list[object]] = []
    for conc in levels:
        sizes = sorted({s.body_bytes for s in samples if s.concurrency == conc})
        for size in sizes:
            row: list[object] = [conc, f"{size / 1e6:.2f} MB"]
            for name in SETUPS:
                values = [
                    s.ttfb_ms
                    for s in samples
                    if s.concurrency == conc and s.setup == name and s.body_bytes == size and s.ok
                ]
                row += [percentile(values, 50), percentile(values, 99)]
            rows.append(row)
    head = ["conc", "body", *(f"{n} {q}" for n in SETUPS for q in ("p50", "p99"))]
    return table(head, rows)


async def run(stack: Stack, levels: list[int], rounds: int, seed: int, rate: float) -> list[Sample]:
    async with SyntheticSession(f"http://{HOST}:1") as builder:
        bodies = [build_body(builder, Shape(s.body_bytes, EVENTS), 0.0) for s in FULL_MIX]
    nonces = itertools.count(1)
    rng = random.Random(seed)
    targets = [stack.targets[n] for n in SETUPS]
    print("warm-up", flush=True)
    await session(targets, bodies[:1], 0, 2, 1, nonces, rng)
    samples: list[Sample] = []
    for conc in levels:
        t0 = time.perf_counter()
        per = max(1, rounds // conc)
        # A bounded total rate: more sessions means more overlap, not a saturated machine
        # (--rate 0 takes the cap off: then the level measures an overloaded box).
        gap = max(GAP_S, conc / rate) if rate > 0 else GAP_S
        results = await asyncio.gather(
            *(session(targets, bodies, i, per, conc, nonces, rng, gap) for i in range(conc))
        )
        got = [s for r in results for s in r]
        samples += got
        bad = sum(1 for s in got if not s.ok)
        print(
            f"concurrency {conc}: {per} rounds per session, {gap * 1000:g} ms apart, "
            f"{len(got)} requests "
            f"in {time.perf_counter() - t0:.1f} s, {bad} failed",
            flush=True,
        )
        await asyncio.to_thread(stack.wait_core_idle)
    return samples


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--levels", default="1,8,32", help="concurrencies")
    p.add_argument("--rounds", type=int, default=960, help="rounds per level (all sessions)")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-round setup order")
    p.add_argument(
        "--rate", type=float, default=RATE, help="requests/s of all sessions (0: no cap)"
    )
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    print_header("benchmarks.ttfb", argv)
    print(
        f"levels {levels}, {args.rounds} rounds per level, at most {args.rate:g} requests/s, "
        f"setups {', '.join(SETUPS)}"
    )
    with tempfile.TemporaryDirectory(prefix="clauditor-ttfb-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start_upstream()
            stack.start_plain_envoy("b")
            stack.start_plain_envoy("b2")
            stack.start_clauditor()
            samples = asyncio.run(run(stack, levels, args.rounds, args.seed, args.rate))
        finally:
            stack.stop()
    print()
    print("TTFB in ms; '- b' columns: minus plain Envoy (b) in the same run.")
    print("(b2) is a second, identical plain Envoy: its '- b' is this machine's noise floor.")
    print(summary(samples, levels))
    print()
    print("TTFB by request body (ms):")
    print(by_body(samples, levels))


if __name__ == "__main__":
    main()
