"""host:port parsing and the loopback checks every listener goes through."""

from __future__ import annotations

import ipaddress
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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
