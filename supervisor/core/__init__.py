"""Deciding: the router, one worker per service, the gate, the restart tracker, the
host-pressure guard, selectors, and the clock and timers they run on.
"""
