"""One error root: every exception class clauditor defines descends from ClauditorError
and is named in the tree of clauditor/errors.py; the CLI turns any of them into one line."""

from __future__ import annotations

import importlib
import pkgutil

import click
from click.testing import CliRunner

import clauditor
from clauditor import errors
from clauditor.cli import main
from clauditor.errors import ClauditorError

# The status line's own error never leaves its stdlib-only path (see errors.py).
PRIVATE = {"clauditor.statusline.CoreError"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(clauditor.__path__, "clauditor."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI when imported
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not value.__name__.startswith("_")  # a module's own control flow
            ):
                found[f"{info.name}.{value.__name__}"] = value
    return found


def test_every_clauditor_exception_has_the_one_root_and_is_in_the_tree() -> None:
    classes = {k: v for k, v in _exception_classes().items() if k not in PRIVATE}
    assert len(classes) >= 15
    for name, cls in classes.items():
        assert issubclass(cls, ClauditorError), name
        assert cls.__name__ in (errors.__doc__ or ""), f"{name} is missing from errors.py"


def test_the_cli_maps_the_root_to_one_line() -> None:
    @main.command("boom-for-test")
    def boom() -> None:
        from clauditor.sessions.ids import AmbiguousSession

        raise AmbiguousSession("da3a", ["da3a0740", "da3a9999"])

    try:
        result = CliRunner().invoke(main, ["boom-for-test"])
    finally:
        assert isinstance(main, click.Group)
        main.commands.pop("boom-for-test")
    assert result.exit_code == 1
    assert result.stderr == (
        "clauditor: session id 'da3a' is ambiguous: it starts 2 sessions "
        "(da3a0740, da3a9999); type more of it\n"
    )
    assert result.stdout == ""
