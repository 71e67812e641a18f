"""Configuration: feeds.yaml in, a validated `Config` out.

Owns reading and checking feeds.yaml (every problem with its line and what to change), the
`settings:` keys with their units and bounds, editing feeds.yaml in place with its comments
kept (`aggregator feeds add/remove/pause/resume/import`), and OPML in and out. Pure apart from
reading and writing those files: it never imports a stage (fetch, parse, extract, stories,
store, schedule, engine, daemon, publish, cli).
"""
