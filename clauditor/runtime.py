"""clauditor's runtime directory: private files of one running `up` (Envoy's config with
the ext_proc token, Envoy's admin socket).

The base is `$XDG_RUNTIME_DIR/clauditor/` when that variable names a directory this user
owns and may write, else `<tmp>/clauditor-<uid>/`; each `up` gets a fresh 0700 directory
inside it, removed when it stops. The base is created 0700 and refused when another user
owns it or it is a symlink (someone could have planted it to read or replace our files).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from clauditor.errors import ClauditorError


class RuntimeDirError(ClauditorError):
    """No private directory can be made; the message is one line for the user."""


def _owned_private_dir(path: Path) -> bool:
    """path is a real directory of ours, private (0700) once we fix its mode."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return True


def _xdg_base() -> Path | None:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg or not os.path.isabs(xdg):
        return None
    root = Path(xdg)
    try:
        st = root.stat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or not os.access(root, os.W_OK):
        return None
    return root / "clauditor"


def base_dir() -> Path:
    """The per-user base directory, created 0700 if missing. Raises RuntimeDirError."""
    tmp = Path(tempfile.gettempdir()) / f"clauditor-{os.getuid()}"
    candidates = [c for c in (_xdg_base(), tmp) if c is not None]
    for base in candidates:
        try:
            base.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            continue
        if _owned_private_dir(base):
            return base
    raise RuntimeDirError(
        f"no private runtime directory: {' and '.join(map(str, candidates))} cannot be "
        "created, or are not directories of this user (set XDG_RUNTIME_DIR)"
    )


def instance_dir() -> Path:
    """A new 0700 directory for one `up`, under base_dir(); the caller removes it."""
    try:
        return Path(tempfile.mkdtemp(prefix="up-", dir=base_dir()))
    except OSError as exc:
        raise RuntimeDirError(f"cannot create a runtime directory: {exc}") from None
