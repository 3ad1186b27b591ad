"""The core's ext_proc port accepts only Envoy: a stream without `up`'s per-start token is
refused (UNAUTHENTICATED) before anything is read, counted, and leaves no session. Real
Envoy and core through `clauditor up`; a raw gRPC client plays the forger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import yaml

from clauditor.netaddr import free_port
from clauditor.wire import protocol as pb
from clauditor.wire.auth import TOKEN_ENV, TOKEN_METADATA
from tests.helpers import body_bytes, fixture_posts, wait_until
from tests.integration.reliability import children
from tests.integration.stack import Stack, recorded_headers

pytestmark = pytest.mark.integration


def forged(session_id: str) -> list[pb.ProcessingRequest]:
    """What Envoy would send for a Claude Code request of session_id (headers and body)."""
    record = fixture_posts("a_plain_text")[0]
    headers = [
        (":authority", "api.anthropic.com"),
        (":path", "/v1/messages?beta=true"),
        (":method", "POST"),
        *((k.lower(), v) for k, v in recorded_headers(record, session_id=session_id)),
    ]
    header_map = pb.HeaderMap(
        headers=[pb.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers]
    )
    obs = {"observability_mode": True}
    return [
        pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=header_map), **obs),
        pb.ProcessingRequest(
            request_body=pb.HttpBody(body=body_bytes(record), end_of_stream=True), **obs
        ),
    ]


def send(port: int, session_id: str, token: str | None, *, refused: bool) -> grpc.StatusCode:
    """One side stream to the core, as a forger would open it; its final status.

    With `refused`, nothing is written until the stream ends (at most 10 s): the core must
    refuse it on its metadata alone, before reading anything. (Writing at once would race
    the refusal: gRPC's client then reports INTERNAL for a write into a closed stream.)"""

    async def run() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            process = channel.stream_stream(
                f"/{pb.SERVICE}/{pb.METHOD}",
                request_serializer=pb.ProcessingRequest.SerializeToString,
                response_deserializer=pb.ProcessingResponse.FromString,
            )
            metadata = ((TOKEN_METADATA, token),) if token is not None else None
            call = process(metadata=metadata, timeout=20)
            if refused:
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(call.code()), 10)
            try:
                for message in forged(session_id):
                    await call.write(message)
                await call.done_writing()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the stream was closed under the writes: its code says why
            return await call.code()

    return asyncio.run(run())


def _token_of(stack: Stack) -> str:
    assert stack.admin is not None
    config = stack.admin.parent / "envoy.yaml"  # the runtime directory holds both
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    hcm = yaml.safe_load(config.read_text())["static_resources"]["listeners"][0]
    ext_proc = hcm["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
    (entry,) = ext_proc["typed_config"]["grpc_service"]["initial_metadata"]
    assert entry["key"] == TOKEN_METADATA
    return str(entry["value"])


def _known(stack: Stack, session_id: str) -> bool:
    return stack.get(f"/api/sessions/{session_id}").status_code == 200


def test_forged_streams_are_refused_and_counted(stack: Stack) -> None:
    # Envoy carries the token: real traffic is tracked.
    real = str(uuid.uuid4())
    assert stack.post_record(fixture_posts("a_plain_text")[0], session_id=real).status_code == 200
    stack.session_when(real, requests=1, in_flight=0)

    token = _token_of(stack)
    assert len(token) >= 40
    # Never on a command line (every local user can read those), only in the environment.
    for pid in [stack.proc.pid, *children(stack.proc.pid)]:
        assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    core = stack.core_pid()
    assert f"{TOKEN_ENV}={token}".encode() in Path(f"/proc/{core}/environ").read_bytes()

    before = stack.get("/api/stats").json()["wire"]
    forgeries = {str(uuid.uuid4()): None, str(uuid.uuid4()): "wrong-" + token[6:]}
    for sid, bad in forgeries.items():
        assert send(stack.grpc, sid, bad, refused=True) == grpc.StatusCode.UNAUTHENTICATED

    # A forger that writes its exchange at once, racing the refusal (its client may see
    # INTERNAL for writes into the closed stream): refused all the same.
    pushy = str(uuid.uuid4())
    forgeries[pushy] = None
    code = send(stack.grpc, pushy, None, refused=False)
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL)

    wire = stack.get("/api/stats").json()["wire"]
    assert wire["streams_refused"] == 3
    assert wire["streams_opened"] == before["streams_opened"]  # nothing was read
    metrics = httpx.get(f"{stack.api_url}/metrics", timeout=5, trust_env=False).text
    assert 'clauditor_wire_streams_total{clauditor_state="refused"} 3.0' in metrics

    # The same forged exchange with the right token is taken: so the token is what kept
    # the others out (their sessions are nowhere, live or stored).
    accepted = str(uuid.uuid4())
    assert send(stack.grpc, accepted, token, refused=False) == grpc.StatusCode.OK
    wait_until(lambda: _known(stack, accepted), timeout=10)
    assert not any(_known(stack, sid) for sid in forgeries)
    listed = {s["session_id"] for s in stack.sessions()}
    assert listed.isdisjoint(forgeries) and {real, accepted} <= listed


@contextlib.contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[int, int, list[str]]]:
    """`clauditor serve` alone, with env on top of ours (minus any token); yields its ports
    and a list that holds its log once it has stopped."""
    grpc_port, api = free_port(), free_port()
    full = {k: v for k, v in os.environ.items() if k != TOKEN_ENV} | env
    argv = [
        sys.executable, "-m", "clauditor", "serve",
        "--grpc", f"127.0.0.1:{grpc_port}", "--api", f"127.0.0.1:{api}",
        "--db", str(tmp_path / "serve.db"),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=full, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        url = f"http://127.0.0.1:{api}/health"

        def up() -> bool:
            try:
                return httpx.get(url, timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=20)
        yield grpc_port, api, log
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        log.extend(err.splitlines())


def _sessions(api: int) -> set[str]:
    found = httpx.get(f"http://127.0.0.1:{api}/api/sessions", timeout=5, trust_env=False)
    return {s["session_id"] for s in found.json()["sessions"]}


def test_serve_without_a_token_accepts_any_stream_and_says_so(tmp_path: Path) -> None:
    with serving(tmp_path, {}) as (grpc_port, api, log):
        sid = str(uuid.uuid4())
        assert send(grpc_port, sid, None, refused=False) == grpc.StatusCode.OK
        assert send(grpc_port, str(uuid.uuid4()), "x", refused=False) == grpc.StatusCode.OK
        wait_until(lambda: sid in _sessions(api), timeout=10)
    said = [line for line in log if "accepts streams from any local process" in line]
    assert len(said) == 1, log


def test_serve_with_a_token_from_the_environment(tmp_path: Path) -> None:
    token = "s3cret-token-for-serve"
    with serving(tmp_path, {TOKEN_ENV: token}) as (grpc_port, api, log):
        refused, taken = str(uuid.uuid4()), str(uuid.uuid4())
        assert send(grpc_port, refused, None, refused=True) == grpc.StatusCode.UNAUTHENTICATED
        wrong = token[:-1] + "X"
        assert send(grpc_port, refused, wrong, refused=True) == grpc.StatusCode.UNAUTHENTICATED
        assert send(grpc_port, taken, token, refused=False) == grpc.StatusCode.OK
        wait_until(lambda: taken in _sessions(api), timeout=10)
        assert refused not in _sessions(api)
        url = f"http://127.0.0.1:{api}/api/stats"
        stats = httpx.get(url, timeout=5, trust_env=False).json()
        assert stats["wire"]["streams_refused"] == 2
    assert not [line for line in log if "accepts streams from any local process" in line]
    assert not [line for line in log if token in line]  # never logged
