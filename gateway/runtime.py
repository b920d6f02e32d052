"""Process-level settings for a serving gateway, applied once start-up is done.

The garbage collector: a full collection walks every container object the process holds, and
after start-up that is a couple of hundred thousand of them (the framework, the SDKs, the config,
the compiled policies), almost all of which live as long as the process. Each full collection of
that heap stopped the event loop for 100 to 200 ms on the development machine, which was the
gateway's p99 at 16 connections (bench/README.md, "Where a request's time goes"). ``settle``
collects what start-up left behind once, then freezes the rest (``gc.freeze``): the collector
keeps running on everything made after it, so a reference cycle made while serving is still
freed, but no collection walks the start-up heap again.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect start-up's garbage, then move every surviving object out of the collector's
    generations. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
