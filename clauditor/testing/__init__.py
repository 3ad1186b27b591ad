"""Test tooling: a fake Anthropic upstream (`fake_upstream`), a synthetic Claude Code client
(`client`) and the ordered-header HTTP/1.1 transport it uses (`http1`)."""
