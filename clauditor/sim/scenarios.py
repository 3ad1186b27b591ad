"""The Claude Code scenarios of the compatibility suite, shared by the tests and the capture
script (`scripts/capture_claude_code.py`): what to type, in which runs of one session, and
what the fake upstream is asked to do (`[[fake:...]]` directives, see clauditor.sim.replies).

Each scenario says how many prompts the user typed (`prompts`; a `/compact` is a command,
counted in `compactions`): the `turns` clauditor must count, whatever Claude Code sends
around them (tool rounds, subagents, task notifications, retries, compaction re-asks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clauditor.sim.claude_cli import (
    ClaudeHome,
    InteractiveRun,
    PrintRun,
    run_interactive,
    run_print,
)

__all__ = ["SCENARIOS", "Outcome", "Scenario", "Step", "fallback_model_for", "run_scenario"]

# --fallback-model per version: 2.1.197 as documented (claude-code-wire.md); later versions
# take the alias a user types, which 2.1.332 resolves to claude-sonnet-5-5.
_FALLBACK_MODELS = {"2.1.197": "claude-sonnet-4-5-20250929"}
ALLOWED_TOOLS = ("Bash", "Read", "Agent")
HELLO = "Say hello in five words."
BASH = 'Run echo hi with Bash. [[fake:tool Bash {"command": "echo hi", "description": "Print hi"}]]'
AGENT = (
    'Use a subagent to say hello. [[fake:tool Agent {"description": "Say hello", '
    '"prompt": "Reply with the single word hello.", "subagent_type": "general-purpose", '
    '"run_in_background": %s}]]'
)
REPLY_MARK = "Hello from the fake upstream"  # the fake's plain-text reply


def fallback_model_for(version: str) -> str:
    return _FALLBACK_MODELS.get(version, "sonnet")


@dataclass(frozen=True)
class Step:
    """One `claude -p` run: a new session, or --continue / --resume <id> of the first."""

    prompt: str
    session: Literal["new", "continue", "resume"] = "new"
    fallback: bool = False  # add --fallback-model (see fallback_model_for)

    def argv(self, version: str, session_id: str | None) -> list[str]:
        args = ["-p", self.prompt]
        if self.session == "continue":
            args.append("--continue")
        elif self.session == "resume":
            if session_id is None:
                raise ValueError("--resume needs the session id of an earlier step")
            args += ["--resume", session_id]
        if self.fallback:
            args += ["--fallback-model", fallback_model_for(version)]
        return [*args, "--allowedTools", *ALLOWED_TOOLS]


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    prompts: int  # typed by the user, not counting /compact: clauditor's `turns`
    steps: tuple[Step, ...] = ()
    interactive: tuple[str, ...] = ()  # prompts typed into the TUI under tmux instead
    compactions: int = 0
    subagent: Literal["foreground", "background"] | None = None
    fallback: bool = False

    @property
    def runs(self) -> int:
        return len(self.steps) or 1


@dataclass
class Outcome:
    scenario: Scenario
    version: str
    home: ClaudeHome
    runs: list[PrintRun] = field(default_factory=list)
    tui: InteractiveRun | None = None

    @property
    def session_id(self) -> str | None:
        if self.tui is not None:
            return self.tui.session_id
        return self.runs[0].session_id if self.runs else None

    def failures(self) -> list[str]:
        """Runs that did not exit 0, with the end of their output."""
        return [
            f"{r.argv[1:3]} exited {r.returncode}: {r.stderr[-800:]} {r.stdout[-800:]}"
            for r in self.runs
            if r.returncode != 0
        ]


def _replied(screen: str, k: int) -> bool:
    return screen.count(REPLY_MARK) >= k


def run_scenario(
    binary: str, version: str, scenario: Scenario, base_url: str, root: Path
) -> Outcome:
    """Run every step of scenario with one throwaway HOME under root (created here)."""
    home = ClaudeHome.create(root)
    outcome = Outcome(scenario, version, home)
    if scenario.interactive:
        outcome.tui = run_interactive(binary, home, base_url, list(scenario.interactive), _replied)
        return outcome
    for step in scenario.steps:
        run = run_print(binary, home, base_url, step.argv(version, outcome.session_id))
        outcome.runs.append(run)
        if run.returncode != 0:
            break
    return outcome


_LIST = [
    Scenario("plain", "one prompt, one text reply", 1, (Step(HELLO),)),
    Scenario("tool", "one Bash round trip", 1, (Step(BASH),)),
    Scenario(
        "toolsearch",
        "the model loads a deferred tool: ToolSearch select:WebFetch, then a `Tool loaded.` "
        "text beside the tool_result (2.1.332; 2.1.197 has no ToolSearch and answers with an "
        "error tool_result)",
        1,
        (Step('Load the WebFetch tool. [[fake:tool ToolSearch {"query": "select:WebFetch"}]]'),),
    ),
    Scenario(
        "subagent",
        "a foreground subagent (Agent, run_in_background false)",
        1,
        (Step(AGENT % "false"),),
        subagent="foreground",
    ),
    Scenario(
        "subagent_bg",
        "a background subagent: the Agent call returns at once, the subagent runs on, and a "
        "later main-thread request carries its <task-notification>",
        1,
        (Step(AGENT % "true"),),
        subagent="background",
    ),
    Scenario(
        "continue_resume",
        "three runs of one session: a prompt, --continue, --resume <id>",
        3,
        (
            Step(HELLO),
            Step("And again, in three words.", "continue"),
            Step("One more time, in two words.", "resume"),
        ),
    ),
    Scenario(
        "retry_529",
        "two 529 overloaded errors, then Claude Code's byte-identical resend succeeds",
        1,
        (Step(HELLO + " [[fake:status 529 2]]"),),
    ),
    Scenario(
        "fallback_model",
        "the default model answers 529 until Claude Code switches to --fallback-model",
        1,
        (Step(HELLO + " [[fake:overload claude-opus]]", fallback=True),),
        fallback=True,
    ),
    Scenario(
        "sse_error",
        "an SSE error event after content_block_start (message_start, ping, block start): "
        "Claude Code resends the request non-streaming",
        1,
        (Step(HELLO + " [[fake:sse_error 3]]"),),
    ),
    Scenario(
        "sse_error_early",
        "an SSE error event before any content block (message_start, ping): Claude Code "
        "resends the request streaming",
        1,
        (Step(HELLO + " [[fake:sse_error 2]]"),),
    ),
    Scenario(
        "compact",
        "/compact under --continue after a Bash round trip; the summary has no <summary> "
        "tags, so 2.1.332 asks again (two compaction requests, one compaction)",
        2,
        (
            Step(BASH),
            Step("/compact [[fake:compact untagged]]", "continue"),
            Step("What did we talk about?", "continue"),
        ),
        compactions=1,
    ),
    Scenario(
        "compact_tagged",
        "/compact under --continue after a Bash round trip; a tagged summary (one request)",
        2,
        (
            Step(BASH),
            Step("/compact", "continue"),
            Step("What did we talk about?", "continue"),
        ),
        compactions=1,
    ),
    Scenario(
        "interactive",
        "the TUI under tmux: one prompt typed with send-keys, the reply, /exit",
        1,
        interactive=(HELLO,),
    ),
]
SCENARIOS: dict[str, Scenario] = {s.name: s for s in _LIST}
