"""Configuration: feeds.yaml in, a validated `Config` out.

Owns reading and checking feeds.yaml (every problem with its line and what to change) and the
`settings:` keys with their units and bounds. Pure apart from reading the file: it never
imports a stage (fetch, parse, extract, stories, store, schedule, engine, daemon, publish, cli).
"""
