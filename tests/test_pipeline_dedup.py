"""A wire feed and a partner feed carry the same story under different URLs: one story, two
sources, the wire copy leads. Real HTTP server, real worker process, real SQLite file, and
the `aggregator stories` commands over the result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from feeds_builder import article_page, partner_page, rss
from localserver import LocalServer

from aggregator.cli import cli
from aggregator.config.loader import parse_config
from aggregator.engine.pool import Workers
from aggregator.engine.run import fetch_feeds
from aggregator.models import Config
from aggregator.store import Store

STRIKE_TITLE = "Dockworkers strike shuts the country's main port for a third day"
STRIKE = [
    "Dockworkers kept the country's main container port closed for a third day on Wednesday,"
    " as talks between their union and the ports authority broke up without an agreement on"
    " wages, according to officials on both sides.",
    "More than forty ships were waiting at anchor outside the harbour, the ports authority said,"
    " and exporters of fruit and textiles warned that perishable cargo would be lost within days"
    " if the gates did not reopen.",
    "The union is demanding a fifteen percent pay rise to make up for inflation, which reached"
    " its highest level in a decade last year. The authority has offered six percent over two"
    " years and a one-off payment.",
    "We will not return to the cranes for promises, the union's general secretary told"
    " reporters outside the ministry of transport, where the two sides met for four hours.",
    "The transport minister said the government would not intervene in the dispute for now but"
    " urged both sides to resume talks on Thursday morning under the mediation of the labour"
    " court.",
    "Truck drivers queued for several kilometres on the coastal highway, and the chamber of"
    " commerce estimated losses at about twelve million dollars a day.",
    "The last strike at the port, in 2019, lasted nine days and ended with an agreement that"
    " the union says the authority never fully honoured.",
    "Shipping lines have begun diverting vessels to smaller ports along the coast, which lack"
    " the cranes to handle large container ships, analysts said.",
]
# Another outlet's own report of the same event: the same facts and keywords, its own words.
STRIKE_ELSEWHERE = [
    "Cranes stood idle and the gates stayed locked at the main port on Wednesday as the"
    " dockworkers' walkout entered its third day with no sign of a deal.",
    "Negotiators for the union left the transport ministry in the evening saying the ports"
    " authority had not improved its pay offer, and no new meeting had been set.",
    "Our members cannot live on six percent when prices have risen this much, one of the union"
    " negotiators said, adding that the strike could last weeks.",
    "Fruit exporters said refrigerated containers were running out of power on the quay and"
    " that they had begun to lose shipments bound for European buyers.",
    "At a roadside cafe near the port entrance, drivers who had waited since Monday said they"
    " were sleeping in their cabs and running short of money for food.",
    "Economists said a strike lasting more than a week would cut into the quarter's export"
    " figures, already weakened by lower prices for the country's main crops.",
]


def serve(server: LocalServer) -> None:
    server.add("/wire/strike", article_page(STRIKE_TITLE, STRIKE), content_type="text/html")
    server.add(
        "/wire/strike-elsewhere",
        article_page("Port strike enters third day", STRIKE_ELSEWHERE),
        content_type="text/html",
    )
    # The partner's copy: its own page, a byline, a new headline, the last paragraph cut.
    server.add(
        "/local/2026/port-standoff",
        partner_page(
            "Port standoff: no deal as ships pile up",
            STRIKE[:-1],
            byline="By Jane Doe, with wire reports",
        ),
        content_type="text/html",
    )
    server.add(
        "/wire.xml",
        rss(
            [
                {"title": STRIKE_TITLE, "link": server.url("/wire/strike"), "guid": "w1"},
                {
                    "title": "Port strike enters third day",
                    "link": server.url("/wire/strike-elsewhere"),
                    "guid": "w2",
                },
            ]
        ),
    )
    server.add(
        "/partner.xml",
        rss(
            [
                {
                    "title": "Port standoff: no deal as ships pile up",
                    "link": server.url("/local/2026/port-standoff"),
                    "guid": "p1",
                }
            ]
        ),
    )


def config_for(server: LocalServer) -> Config:
    return parse_config(
        # No politeness gap: every page is on the one test host, and the gap is not tested here.
        "settings:\n  allow_private_networks: true\n  timeout: 10s\n  host_gap: 0\nfeeds:\n"
        f"  - name: partner\n    url: {server.url('/partner.xml')}\n    priority: 1\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n    priority: 10\n"
    )


@pytest.fixture
def fetched(server: LocalServer, tmp_path: Path) -> Path:
    serve(server)
    config = config_for(server)
    path = tmp_path / "news.db"
    store = Store.open(str(path))
    workers = Workers(1)  # the fingerprint job crosses a real process boundary
    try:
        outcomes = asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
    finally:
        workers.close()
        store.close()
    assert {o.outcome for o in outcomes} == {"ok"}
    return path


def test_wire_and_partner_copies_are_one_story(fetched: Path) -> None:
    store = Store.open(str(fetched))
    wire, partner, elsewhere = (
        store.execute("SELECT id, story_id FROM items WHERE url LIKE ?", [f"%{path}"])[0]
        for path in ("/wire/strike", "/port-standoff", "/strike-elsewhere")
    )
    assert wire[1] == partner[1]  # the same story under two URLs
    assert elsewhere[1] != wire[1]  # another article about the same event stays apart
    assert store.execute(
        "SELECT lead_item_id, title, item_count FROM stories WHERE id = ?", [wire[1]]
    ) == [(wire[0], STRIKE_TITLE, 2)]
    ((item, matched, signal, score),) = store.execute(
        "SELECT item_id, matched_item_id, signal, score FROM story_links"
    )
    assert {item, matched} == {wire[0], partner[0]}
    assert signal == "minhash"
    assert 0.4 <= score <= 1.0
    assert store.execute("SELECT count(*) FROM stories") == [(2,)]
    store.close()


def test_the_stories_commands(fetched: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--config", str(tmp_path / "none.yaml"), "--db", str(fetched)]
    listing = runner.invoke(cli, [*base, "stories", "--min-sources", "2", "--format", "json"])
    assert listing.exit_code == 0, listing.output
    (story,) = json.loads(listing.output)
    assert (story["items"], story["sources"], story["feeds"]) == (2, 2, "partner,wire")
    assert story["title"] == STRIKE_TITLE

    show = runner.invoke(cli, [*base, "stories", "show", str(story["story"]), "--format", "json"])
    assert show.exit_code == 0, show.output
    lead, joined = json.loads(show.output)
    assert (lead["lead"], lead["feeds"], lead["priority"]) == (1, "wire", 10)
    assert joined["feeds"] == "partner"
    # Whichever feed's refresh stored its copy second joined the first one's story.
    assert {lead["signal"], joined["signal"]} == {"minhash", None}
    table = runner.invoke(cli, [*base, "stories", "show", str(story["story"])])
    assert f"story {story['story']}: {STRIKE_TITLE}" in table.output

    items = runner.invoke(cli, [*base, "items", "--format", "json"])
    assert sorted(i["story_items"] for i in json.loads(items.output)) == [1, 2, 2]

    partner_item = joined["item"]
    split = runner.invoke(cli, [*base, "stories", "split", str(partner_item)])
    assert split.exit_code == 0, split.output
    assert "will not be joined with them again" in split.output
    rebuild = runner.invoke(cli, [*base, "stories", "rebuild"])
    assert rebuild.exit_code == 0, rebuild.output
    assert "3 items in 3 stories" in rebuild.output  # the split held
    again = runner.invoke(cli, [*base, "stories", "split", str(partner_item)])
    assert again.exit_code == 2
    assert "alone in story" in again.output
    missing = runner.invoke(cli, [*base, "stories", "show", "999"])
    assert (missing.exit_code, "no story 999" in missing.output) == (2, True)
