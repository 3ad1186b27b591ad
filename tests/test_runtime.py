"""The runtime directory and the --envoy-admin values."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from clauditor.envoy.admin import AdminOff, AdminSocket, parse_admin
from clauditor.netaddr import AddressError, HostPort
from clauditor.runtime import RuntimeDirError, base_dir, instance_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_xdg_runtime_dir_is_used_when_it_is_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    one, two = instance_dir(), instance_dir()
    assert one.parent == two.parent == tmp_path / "clauditor"
    assert one != two  # one per `up`
    assert _mode(tmp_path / "clauditor") == _mode(one) == 0o700


def test_without_xdg_a_private_dir_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base = tmp_path / f"clauditor-{os.getuid()}"
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)
    assert base_dir() == base
    assert _mode(base) == 0o700  # a too-open one is made private


def test_unusable_xdg_falls_back_and_a_planted_symlink_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"clauditor-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(RuntimeDirError, match="no private runtime directory"):
        base_dir()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, AdminSocket()),
        ("", AdminSocket()),
        ("off", AdminOff()),
        ("OFF", AdminOff()),
        ("127.0.0.1:9901", HostPort("127.0.0.1", 9901)),
        ("[::1]:9901", HostPort("::1", 9901)),
    ],
)
def test_admin_values(value: str | None, expected: object) -> None:
    assert parse_admin(value) == expected


def test_admin_socket_paths(tmp_path: Path) -> None:
    assert parse_admin(str(tmp_path / "a.sock")) == AdminSocket(tmp_path / "a.sock")
    assert parse_admin(f"unix:{tmp_path}/b.sock") == AdminSocket(tmp_path / "b.sock")
    with pytest.raises(AddressError, match="no such directory"):
        parse_admin(str(tmp_path / "nope" / "a.sock"))
    with pytest.raises(AddressError, match="'off' or HOST:PORT"):
        parse_admin("admin.sock")
