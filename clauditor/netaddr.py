"""host:port parsing and the loopback checks every listener goes through."""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass

from clauditor.errors import ClauditorError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


class AddressError(ClauditorError, ValueError):
    """An address flag that cannot be used."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, value: str, *, flag: str = "address") -> HostPort:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise AddressError(f"{flag} must be HOST:PORT, got {value!r}")
        host = host.strip("[]")
        try:
            number = int(port)
        except ValueError:
            raise AddressError(f"{flag} port must be a number, got {value!r}") from None
        if not 0 <= number <= 65535:
            raise AddressError(f"{flag} port out of range: {value!r}")
        return cls(host, number)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        return f"http://{self}"


def port_in_use(addr: HostPort) -> bool:
    """True when something already listens on addr (we try to bind it ourselves)."""
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr.host, addr.port))
        except OSError:
            return True
    return False


# Ports handed out by free_port in this process: never twice, even once released.
_handed: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; else IANA's)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low, high = (int(v) for v in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 49152, 65535


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server a test or benchmark starts next.

    Never one from the ephemeral range: between this check and the server's bind, any
    outgoing connection on the machine (an HTTP client, Envoy's upstream pool) may take an
    ephemeral port, and the server then fails with "address already in use". Below that
    range only listeners take ports. Random, so parallel runs rarely meet; remembered, so
    one process never gets the same port twice."""
    low, high = _ephemeral_range()
    # The range below the ephemeral one, or above it when the ephemeral range starts low.
    span = (10000, low - 1) if low - 1 - 10000 >= 2000 else (high + 1, 65535)
    rng = random.Random()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(500):  # bounded: a machine with 500 busy picks in a row is not sane
        port = rng.randint(*span)
        if port in _handed:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed.add(port)
        return port
    with socket.socket(family, socket.SOCK_STREAM) as sock:  # the kernel's pick, at worst
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen
