"""Golden files: hand-written feeds and article pages with the parse and extract output the
current code gives for them (see README.md)."""
