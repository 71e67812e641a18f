"""Extraction: an article page's bytes in, an `Article` out (pure).

Owns decoding the page (charset), trafilatura, and the article HTML made safe to republish.
Runs in a worker process: it never imports fetch, store, httpx, sqlite3 or sqlite_utils.
"""
