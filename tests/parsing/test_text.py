"""clean_prompt, summarize_text, tool_input_summary."""

from __future__ import annotations

from typing import Any

import pytest

from clauditor.parsing.text import clean_prompt, summarize_text, tool_input_summary


def test_clean_prompt_drops_reminders_and_folds_whitespace() -> None:
    text = "<system-reminder>date is X\nmore</system-reminder>\n  Fix   the\n\nbug  "
    assert clean_prompt(text) == "Fix the bug"


def test_clean_prompt_slash_command() -> None:
    text = (
        "<command-message>compact</command-message>\n<command-name>/compact</command-name>\n"
        "<command-args>keep the API notes</command-args>"
    )
    assert clean_prompt(text) == "/compact keep the API notes"
    assert clean_prompt("<command-name>/clear</command-name><command-args></command-args>") == (
        "/clear"
    )


def test_clean_prompt_drops_local_command_output_and_caveats() -> None:
    text = (
        "<local-command-caveat>Caveat: generated locally</local-command-caveat>"
        "<local-command-stdout>secret output</local-command-stdout>"
        "<local-command-stderr>err</local-command-stderr>"
        "<bash-input>ls</bash-input><bash-stdout>a.txt</bash-stdout><bash-stderr></bash-stderr>"
    )
    assert clean_prompt(text) == "ls"


def test_clean_prompt_keeps_user_markup_and_unclosed_reminder_hides_rest() -> None:
    assert clean_prompt("Why does <div> break in <T>?") == "Why does <div> break in <T>?"
    assert clean_prompt("ask this <system-reminder>half a remind") == "ask this"
    assert clean_prompt("unclosed <command-message>x stays") == "unclosed x stays"


def test_clean_prompt_cap() -> None:
    assert clean_prompt("word " * 200, limit=12) == "word word w…"
    assert len(clean_prompt("a" * 1000)) == 500
    assert clean_prompt("a" * 1000).endswith("…")
    assert clean_prompt("", limit=10) == ""


def test_clean_prompt_is_linear_on_hostile_tags() -> None:
    hostile = "<command-message>" * 50_000 + "<system-reminder" * 50_000
    assert clean_prompt(hostile, limit=20).startswith("<system-reminder<sy")


def test_summarize_text_drops_code_and_json() -> None:
    reply = (
        "I fixed the bug in the parser.\n\n"
        "```python\ndef f():\n    return 1\n```\n"
        '{"a": 1}\n'
        "const x = 3;\n"
        "x = compute()\n"
        "The tests pass now."
    )
    assert summarize_text(reply) == "I fixed the bug in the parser. The tests pass now."


def test_summarize_text_unclosed_fence_and_cap() -> None:
    assert summarize_text("Intro.\n```\ncode forever\nmore code") == "Intro."
    assert summarize_text("word " * 100, limit=20) == "word word word word…"


@pytest.mark.parametrize(
    ("name", "tool_input", "expected"),
    [
        ("Read", {"file_path": "/home/dev/README.md"}, "/home/dev/README.md"),
        ("Edit", {"file_path": "/a.py", "old_string": "SECRET", "new_string": "S2"}, "/a.py"),
        ("Write", {"file_path": "/b.txt", "content": "TOP SECRET"}, "/b.txt"),
        ("NotebookEdit", {"notebook_path": "/n.ipynb", "new_source": "x"}, "/n.ipynb"),
        ("Bash", {"command": "echo hi", "description": "Print hi"}, "echo hi"),
        ("Bash", {"command": "  git status\ncat secret.txt"}, "git status"),
        ("Grep", {"pattern": "TODO", "path": "src"}, "TODO in src"),
        ("Glob", {"pattern": "**/*.py"}, "**/*.py"),
        ("WebFetch", {"url": "https://ex.com/a/b?token=SECRET#frag", "prompt": "p"}, "ex.com/a/b"),
        ("WebFetch", {"url": "not a url"}, ""),
        ("WebSearch", {"query": "python zlib"}, "python zlib"),
        (
            "Agent",
            {"description": "Say hello", "subagent_type": "general-purpose"},
            "general-purpose: Say hello",
        ),
        ("Agent", {"description": "Only desc", "prompt": "long secret prompt"}, "Only desc"),
        ("mcp__github__create_issue", {"title": "T", "body": "SECRET"}, "title, body"),
        ("SomethingNew", {"alpha": 1, "beta": "SECRET"}, "alpha, beta"),
        ("Read", None, ""),
        ("Read", {"file_path": 5}, ""),
        ("Bash", {"command": ["rm"]}, ""),
    ],
)
def test_tool_input_summary(name: str, tool_input: dict[str, Any] | None, expected: str) -> None:
    assert tool_input_summary(name, tool_input) == expected


def test_tool_input_summary_never_leaks_contents_and_caps() -> None:
    s = tool_input_summary("Bash", {"command": "python -c '" + "x" * 500 + "'"})
    assert len(s) == 60
    assert s.endswith("…")
    assert tool_input_summary("Read", {"file_path": "/" + "d" * 300}, limit=50) == (
        "/" + "d" * 48 + "…"
    )
    assert "SECRET" not in tool_input_summary("Edit", {"file_path": "/f", "new_string": "SECRET"})
