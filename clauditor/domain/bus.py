"""In-process event bus: every consumer gets its own bounded queue and task.

A slow or failing consumer loses its own events (counted), never another
consumer's, and never blocks the publisher (the gRPC side streams).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[E], Awaitable[None] | None]


@dataclass
class ConsumerStats:
    name: str
    delivered: int = 0
    dropped: int = 0
    failed: int = 0


class _Consumer(Generic[E]):
    def __init__(self, name: str, handler: Handler[E], maxsize: int) -> None:
        self.handler = handler
        self.queue: asyncio.Queue[E] = asyncio.Queue(maxsize)
        self.stats = ConsumerStats(name)
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                outcome = self.handler(event)
                if asyncio.iscoroutine(outcome):
                    await outcome
                self.stats.delivered += 1
            except Exception:
                self.stats.failed += 1
                log.exception("consumer %s failed on %s", self.stats.name, type(event).__name__)
            finally:
                self.queue.task_done()


class EventBus(Generic[E]):
    def __init__(self, queue_size: int = 10_000) -> None:
        self._queue_size = queue_size
        self._consumers: list[_Consumer[E]] = []
        self.published = 0

    def subscribe(self, name: str, handler: Handler[E], queue_size: int | None = None) -> None:
        consumer = _Consumer(name, handler, queue_size or self._queue_size)
        self._consumers.append(consumer)
        if self._running:
            consumer.task = asyncio.get_running_loop().create_task(consumer.run())

    _running = False

    def start(self) -> None:
        self._running = True
        loop = asyncio.get_running_loop()
        for consumer in self._consumers:
            if consumer.task is None:
                consumer.task = loop.create_task(consumer.run(), name=f"bus:{consumer.stats.name}")

    def publish(self, event: E) -> None:
        self.published += 1
        for consumer in self._consumers:
            try:
                consumer.queue.put_nowait(event)
            except asyncio.QueueFull:
                consumer.stats.dropped += 1

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every consumer has handled what was published (tests, shutdown)."""
        await asyncio.wait_for(asyncio.gather(*(c.queue.join() for c in self._consumers)), timeout)

    async def stop(self) -> None:
        for consumer in self._consumers:
            if consumer.task is not None:
                consumer.task.cancel()
        await asyncio.gather(
            *(c.task for c in self._consumers if c.task is not None), return_exceptions=True
        )
        self._running = False

    @property
    def stats(self) -> list[ConsumerStats]:
        return [c.stats for c in self._consumers]
