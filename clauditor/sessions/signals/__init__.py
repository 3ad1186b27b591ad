"""Debug signals computed from the wire: cache, context, fallback, quota, cost, latency.

Pure modules (prices, cache, context, fallback, quota, weekly, errors) and the engine the
tracker calls (engine.SignalEngine). Nothing here does I/O after start-up or reads the wall
clock: times come from event timestamps and the injected Clock.
"""
