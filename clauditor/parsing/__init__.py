"""Pure parsing of Anthropic Messages traffic: no I/O, no clock, no logging.

sse (bytes -> events), fold (events or JSON -> MessageResult), response (body bytes ->
signals + result), encoding (Content-Encoding), request (request body -> ParsedRequest),
text (display-safe prompt / reply / tool-input summaries).
"""
