"""The network side of `clauditor watch`: an SSE client for `/watch` that reconnects.

It knows nothing about rendering: it hands decoded events (dicts) to a callback, plus
local `connection` pseudo-events (connected / reconnecting) the renderer can show.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from clauditor.errors import ClauditorError

Emit = Callable[[dict[str, Any]], None]


class WatchUnavailable(ClauditorError):
    """The core cannot be reached (or is not a clauditor core)."""


@dataclass(frozen=True)
class Backoff:
    """Exponential, capped: 0.5 s, 1 s, 2 s ... 10 s."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """SSE lines → JSON events. Comments (heartbeats) and malformed data are skipped."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    event = json.loads("\n".join(data))
                except ValueError:
                    event = None
                data = []
                if isinstance(event, dict):
                    yield event
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


class WatchClient:
    def __init__(
        self,
        url: str,
        session_id: str | None = None,
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = 3.0,
        # Three missed 15 s heartbeats: the core is gone even if the socket is not.
        read_timeout: float = 45.0,
        max_attempts: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.session_id = session_id
        self.detail: dict[str, Any] | None = None  # the session's, once resolve() ran
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self._timeout = httpx.Timeout(connect_timeout, read=read_timeout)
        self._transport = transport
        self._response: httpx.Response | None = None

    def _client(self) -> httpx.Client:
        # trust_env=False: a desktop proxy setting must not swallow loopback traffic.
        return httpx.Client(timeout=self._timeout, trust_env=False, transport=self._transport)

    def check(self) -> None:
        """One quick look at /health; raises WatchUnavailable with a readable reason."""
        try:
            with self._client() as client:
                resp = client.get(f"{self.url}/health")
        except httpx.HTTPError as exc:
            raise WatchUnavailable(
                f"cannot reach the clauditor core at {self.url} ({_error_text(exc)}); "
                "is `clauditor up` running?"
            ) from None
        if resp.status_code != 200 or resp.text.strip() != "ok":
            raise WatchUnavailable(
                f"{self.url}/health answered {resp.status_code}: not a clauditor core?"
            )

    def resolve(self) -> None:
        """A short id (or any unique prefix) becomes the session's full id; an id that
        names no session, or several, is a clear error instead of an endless wait."""
        if self.session_id is None:
            return
        try:
            with self._client() as client:
                resp = client.get(f"{self.url}/api/sessions/{quote(self.session_id, safe='')}")
        except httpx.HTTPError as exc:
            raise WatchUnavailable(
                f"cannot reach the clauditor core at {self.url} ({_error_text(exc)})"
            ) from None
        if resp.status_code in (404, 409):
            raise WatchUnavailable(resp.json().get("detail") or f"no session {self.session_id!r}")
        if resp.status_code != 200:
            raise WatchUnavailable(f"{self.url}/api/sessions answered {resp.status_code}")
        self.detail = resp.json()
        self.session_id = self.detail["session"]["session_id"]

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Stream events into emit until stop is set, reconnecting with backoff."""
        params = {"session": self.session_id} if self.session_id else {}
        attempt = 0
        with self._client() as client:
            while not stop.is_set():
                error: str
                try:
                    with client.stream("GET", f"{self.url}/watch", params=params) as resp:
                        if resp.status_code != 200:
                            raise WatchUnavailable(f"/watch answered {resp.status_code}")
                        self._response = resp
                        attempt = 0
                        emit({"type": "connection", "state": "connected", "at": time.time()})
                        for event in parse_sse(resp.iter_lines()):
                            if stop.is_set():
                                return
                            emit(event)
                    error = "the core closed the stream"
                except (httpx.HTTPError, WatchUnavailable, OSError) as exc:
                    error = _error_text(exc)
                finally:
                    self._response = None
                if stop.is_set():
                    return
                attempt += 1
                if self.max_attempts is not None and attempt > self.max_attempts:
                    emit({"type": "connection", "state": "failed", "error": error})
                    return
                delay = self.backoff.delay(attempt)
                emit(
                    {
                        "type": "connection",
                        "state": "reconnecting",
                        "attempt": attempt,
                        "retry_in": delay,
                        "error": error,
                        "at": time.time(),
                    }
                )
                stop.wait(delay)

    def close(self) -> None:
        """Unblock a run() waiting on the network (from another thread)."""
        resp = self._response
        if resp is None:
            return
        # Closing the response does not wake a thread blocked in recv(); shutting the
        # socket down does (httpcore's network_stream extension gives it). Racing the
        # reader here is harmless: it sees the stream end and stop set.
        with contextlib.suppress(Exception):
            stream = resp.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            resp.close()


class BackgroundClient:
    """Runs a WatchClient on a daemon thread, feeding a bounded queue the UI drains. A UI
    that falls behind blocks this thread, the socket fills and the core drops (and
    counts) events for us, never for anyone else."""

    def __init__(self, client: WatchClient, maxsize: int = 10_000) -> None:
        self.client = client
        self.events: queue.Queue[dict[str, Any]] = queue.Queue(maxsize)
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-client", daemon=True)

    def _run(self) -> None:
        self.client.run(self._put, self.stop)

    def _put(self, event: dict[str, Any]) -> None:
        while not self.stop.is_set():
            try:
                self.events.put(event, timeout=0.5)
                return
            except queue.Full:
                continue

    def start(self) -> BackgroundClient:
        self._thread.start()
        return self

    def drain(self, timeout: float, limit: int = 2000) -> list[dict[str, Any]]:
        """Events that arrived: waits up to timeout for the first, then takes what is there."""
        out: list[dict[str, Any]] = []
        try:
            out.append(self.events.get(timeout=timeout))
            while len(out) < limit:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self, timeout: float = 1.0) -> None:
        self.stop.set()
        self.client.close()
        self._thread.join(timeout)
