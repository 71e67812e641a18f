"""Publishing: stories out as Atom, RSS 1.0/2.0 or JSON Feed for republishing.

Owns rendering exported and served feeds, every field through the project's sanitising
functions. It reads stored rows handed to it; it never imports fetch, engine, daemon or cli.
"""
