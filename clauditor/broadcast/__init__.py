"""Live broadcast of tracker changes to `/watch` subscribers (Server-Sent Events)."""

from clauditor.broadcast.hub import Subscription, WatchEvent, WatchHub

__all__ = ["Subscription", "WatchEvent", "WatchHub"]
