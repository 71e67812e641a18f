"""Publishing: stories out as Atom 1.0, RSS 2.0 or JSON Feed 1.1 for republishing.

Owns rendering exported and served feeds, every field through the project's sanitising
functions (`aggregator.sanitize`), and reads stories through `aggregator.store`'s public
reader. It never imports fetch, parse, extract, engine, daemon or cli, and never writes.
"""
