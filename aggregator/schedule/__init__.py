"""Scheduling: when a feed is next due, and who may refresh it now (pure).

Owns the polling policy (intervals, backoff, the server's freshness hints), a feed's row after
a refresh, and leases (one process per feed at a time). Decisions take `now` and the feed's
history as arguments and never read the clock; it never imports fetch, parse, extract, store
(leases talk to it through a protocol), engine, daemon or cli.
"""
