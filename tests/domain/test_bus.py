"""The event bus's contract (clauditor/domain/bus.py): each consumer sees every event in
publish order on its own queue; a failing or full consumer loses only its own events,
counted, and never blocks the publisher or another consumer."""

from __future__ import annotations

import asyncio

import pytest

from clauditor.domain.bus import EventBus


async def test_every_consumer_gets_every_event_in_publish_order() -> None:
    bus: EventBus[int] = EventBus()
    sync_seen: list[int] = []
    async_seen: list[int] = []

    async def slow(event: int) -> None:
        await asyncio.sleep(0)  # yields between events: order must still hold
        async_seen.append(event)

    bus.subscribe("sync", sync_seen.append)
    bus.subscribe("async", slow)
    bus.start()
    for i in range(100):
        bus.publish(i)
    await bus.drain()
    assert sync_seen == async_seen == list(range(100))
    assert bus.published == 100
    assert [(s.name, s.delivered, s.dropped, s.failed) for s in bus.stats] == [
        ("sync", 100, 0, 0),
        ("async", 100, 0, 0),
    ]
    await bus.stop()


async def test_a_failing_consumer_is_counted_and_the_others_carry_on() -> None:
    bus: EventBus[int] = EventBus()
    good: list[int] = []

    def flaky(event: int) -> None:
        if event % 3 == 0:
            raise RuntimeError("consumer bug")

    bus.subscribe("flaky", flaky)
    bus.subscribe("good", good.append)
    bus.start()
    for i in range(9):
        bus.publish(i)
    await bus.drain()
    assert good == list(range(9))
    flaky_stats, good_stats = bus.stats
    # 0, 3, 6 failed; the flaky consumer still handled the rest.
    assert (flaky_stats.failed, flaky_stats.delivered) == (3, 6)
    assert (good_stats.failed, good_stats.delivered) == (0, 9)
    await bus.stop()


async def test_a_full_queue_drops_that_consumers_events_only() -> None:
    bus: EventBus[int] = EventBus(queue_size=100)
    small: list[int] = []
    big: list[int] = []
    bus.subscribe("small", small.append, queue_size=2)
    bus.subscribe("big", big.append)
    bus.start()
    for i in range(5):  # published with no await: the consumers have not run yet
        bus.publish(i)
    await bus.drain()
    assert small == [0, 1] and big == [0, 1, 2, 3, 4]
    assert [s.dropped for s in bus.stats] == [3, 0]
    await bus.stop()


async def test_a_consumer_subscribed_while_running_starts_at_once() -> None:
    bus: EventBus[str] = EventBus()
    bus.start()
    late: list[str] = []
    bus.subscribe("late", late.append)
    bus.publish("x")
    await bus.drain()
    assert late == ["x"]
    await bus.stop()


async def test_drain_times_out_when_a_consumer_is_stuck() -> None:
    bus: EventBus[int] = EventBus()
    release = asyncio.Event()

    async def stuck(event: int) -> None:
        await release.wait()

    bus.subscribe("stuck", stuck)
    bus.start()
    bus.publish(1)
    with pytest.raises(TimeoutError):
        await bus.drain(timeout=0.05)
    release.set()
    await bus.drain()
    await bus.stop()
    assert bus.stats[0].delivered == 1
