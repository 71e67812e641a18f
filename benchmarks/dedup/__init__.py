"""Near-duplicate detection on real text: precision and recall per signal, and the cost of a
lookup as the store grows. Run `python -m benchmarks.dedup` (see __main__.py)."""
