"""The engine: refreshing a feed by composing the stages.

Owns the stage calls with their plain input and output values (poll a feed, fetch a page,
extract an article, fingerprint it, commit a batch), the local worker pool they run in, the
run context that `aggregator fetch` and the daemon both use for set-up and tear-down, and the
distributed mode: the stages as Dramatiq tasks, the writer that commits their answers, and
what they share in Redis. It
may import every stage and the store; no stage imports it, and it never imports daemon, publish
or cli.
"""
