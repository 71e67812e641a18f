"""Fetching: the only network I/O in the project.

Owns the HTTP client (httpx), the address guard (public addresses only unless allowed), size
and time caps, per-host politeness, robots.txt for article pages, and undoing
Content-Encoding. It hands back plain `FetchResult`s and raises the project's own errors:
nothing above it imports httpx. It never imports parse, extract, stories, store or engine.
"""
