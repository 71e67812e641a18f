"""The daemon (`aggregator run`): APScheduler's triggers, signals, the one-instance lock,
metrics and logs around the engine.

It decides nothing about feeds (the store says which are due, the engine refreshes them) and
never imports publish or cli.
"""
