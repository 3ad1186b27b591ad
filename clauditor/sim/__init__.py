"""The simulator: a fake Anthropic Messages API upstream and a synthetic Claude Code client,
for `clauditor demo`, the benchmarks and the tests.

- `server.FakeUpstream`: a loopback Anthropic that answers from a reply policy
  (`replies`: scripts, `[[fake:...]]` directives, the default reply), writes every byte
  itself (`wire`: SSE events, chunking, gzip, errors, cut streams; `http1`: the HTTP/1.1
  framing), models usage and prompt caching deterministically (`usage`) and records each
  `exchange.Exchange`.
- `claude.SyntheticSession`: requests shaped like Claude Code's on the wire, sent through
  `transport.OrderedHeadersTransport` (headers in Claude Code's order) and read back by
  `reading`; `claude_cli` runs the real Claude Code CLI against the fake, `scenarios` are
  the compatibility suite's runs, `records` writes what the fake saw as fixture lines.

It is deliberately independent of `clauditor.parsing` (and of everything above it): it is
the oracle the parsers are tested against, so it must never reuse their code, or a parser
bug would be written by the fake and read back by the test as correct. import-linter
enforces it (pyproject.toml); only leaf helpers of the package may be imported here.
"""
