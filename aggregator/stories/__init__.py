"""Stories: is this entry new, and which story does it belong to? (pure decisions)

Owns an entry's identity (GUID, else canonical URL, else a content hash), the fingerprint
that near-duplicate detection compares, and every decision about stories: candidates, the
best match, joining or founding a story, an editor's splits, a rebuild. It reads and writes
through the store's transaction API handed to it; it never imports fetch, store, httpx,
sqlite3 or sqlite_utils.
"""
