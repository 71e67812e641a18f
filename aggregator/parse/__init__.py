"""Parsing: a feed's bytes in, a `ParsedFeed` of normalised `Entry`s out (pure).

Owns RSS, Atom and RDF through feedparser, JSON Feed on its own, and what a feed says about
its own cadence (ttl, sy:updatePeriod, skipHours/skipDays). Runs in a worker process: it
never imports fetch, store, httpx, sqlite3 or sqlite_utils.
"""
