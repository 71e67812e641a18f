"""Near-duplicate detection, measured.

    .venv/bin/python -m benchmarks.dedup [--seed N] [--sizes 10000,100000,1000000]

1. Quality: the labelled pairs of labelled.py and summaries.py (real text from
   ../shared/corpora; every random choice from --seed), judged by each signal alone, by the
   signals combined as dedup.best_match tries them (MinHash only for pairs sharing an LSH
   band, as in the store), and through the store itself (every copy saved in time order into
   a real SQLite file; did each pair end in one story?). Precision, recall, F1; merges per
   kind of pair; what other thresholds would have done.
2. Feed-only corpora (teasers.py): regional editions whose summaries share a teaser, and the
   same feeds with no summaries, stored as one run of 200 feeds delivers them: precision,
   recall, and the cost of each entry as the store fills.
3. Cost (cost.py, crowded.py): placing a new entry in stores of --sizes synthetic items, for
   the labelled corpus's texts and items, and for each feed-only corpus with every stored
   item inside the time window.

The report is printed as markdown and written to benchmarks/results/dedup.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from multiprocessing import Pool

from aggregator.models import Settings
from aggregator.stories.dedup import BANDS, NUM_PERM, ROWS, SHINGLE_WORDS, DedupPolicy
from benchmarks import summary
from benchmarks.dedup import corpus, report, teasers
from benchmarks.dedup.cost import Cost
from benchmarks.dedup.labelled import text_pairs
from benchmarks.dedup.quality import Score, evaluate, judge, make_copies, score
from benchmarks.dedup.summaries import summary_pairs

RESULTS = corpus.CACHE / "dedup.md"


def _extract_one(job: tuple[str, str]) -> str | None:
    from aggregator.errors import ExtractError
    from aggregator.extract.article import extract_article

    url, html = job
    try:
        return extract_article(html.encode("utf-8"), url=url).text
    except ExtractError:
        return None


def _extract(jobs: list[tuple[str, str]]) -> list[str | None]:
    with Pool(2) as pool:
        return pool.map(_extract_one, jobs, chunksize=16)


def quality(seed: int, policy: DedupPolicy) -> tuple[list[str], Score]:
    """The report's lines, and the labelled pairs' score through the store."""
    rng = random.Random(seed)
    pairs_t, notes = text_pairs(corpus.articles(), rng, _extract)
    pairs_s, unlabelled, notes_s = summary_pairs(corpus.feed_items(), rng)
    pairs = pairs_t + pairs_s
    result = evaluate(pairs, policy)
    loose = [judge(p, make_copies([p.first, p.second]), policy) for p in unlabelled]
    merged_loose = [v for v in loose if v.combined is not None]
    lines = [
        f"Labelled set: {sum(p.same for p in pairs)} same-story pairs and"
        f" {sum(not p.same for p in pairs)} different-story pairs ({len(pairs_t)} from article"
        f" texts, {len(pairs_s)} from feed items); {'; '.join(notes[:1] + notes_s)}.",
        "",
        *report.signal_table(result),
        "",
        *report.kind_table(result),
        "",
        f"Store path: {result.store_items} copies saved in {result.store_seconds:.1f} s"
        f" ({result.store_seconds / max(result.store_items, 1) * 1000:.2f} ms per item,"
        " fingerprints made beforehand as the workers do).",
        "",
        f"Not labelled: {len(unlabelled)} pairs of different outlets' items on the same topic"
        " that share too much text to call different articles without reading them"
        f" (exact Jaccard >= 0.2 or a common run of 8 words); {len(merged_loose)} merged,"
        " each listed here to be read:",
        "",
        *(
            f"- {v.similarity:.2f} {v.pair.first.feed}: {v.pair.first.title!r} /"
            f" {v.pair.second.feed}: {v.pair.second.title!r}"
            for v in sorted(merged_loose, key=lambda v: -(v.similarity or 0))
        ),
        "",
        *report.sweep_table(result, "text", [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7], policy),
        "",
        *report.sweep_table(result, "summary", [0.5, 0.6, 0.7, 0.8, 0.9], policy),
        *(["", *(f"- {n}" for n in notes[1:])] if notes[1:] else []),
    ]
    return lines, score(result.verdicts, "store")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dedup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="stored items for the cost run ('': none)"
    )
    args = parser.parse_args(argv)
    if not (corpus.CORPORA / "extraction-eval").is_dir():
        print(f"benchmarks.dedup: skipped, no corpus at {corpus.CORPORA}")
        return 0
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    policy = DedupPolicy.from_settings(Settings())
    quality_lines, through_store = quality(args.seed, policy)
    lines = [
        "## Near-duplicate detection (benchmarks/dedup)",
        "",
        f"Command: `.venv/bin/python -m benchmarks.dedup --seed {args.seed}"
        f" --sizes {args.sizes or repr('')}`",
        "",
        f"Settings (the defaults): dedup_threshold {policy.threshold}, dedup_summary_threshold"
        f" {policy.summary_threshold}, title_confirm_threshold {policy.title_confirm_threshold},"
        f" dedup_window {policy.window_s // 86400}d; {SHINGLE_WORDS}-word shingles, {NUM_PERM}"
        f" permutations, LSH {BANDS} bands x {ROWS} rows.",
        "",
        *quality_lines,
    ]
    rng = random.Random(args.seed)
    items = corpus.feed_items()
    feed_only = [teasers.teasers(items, rng), teasers.headlines(items, rng)]
    lines += ["", *teasers.quality(feed_only, policy)]
    costs: list[Cost] = []
    if args.sizes:
        from benchmarks.dedup.cost import cost_table
        from benchmarks.dedup.crowded import cost_tables

        sizes = [int(s) for s in args.sizes.split(",")]
        lines += ["", *cost_table(sizes, random.Random(args.seed), policy, costs)]
        lines += ["", *cost_tables(feed_only, sizes, rng, policy, costs)]
    load = os.getloadavg()
    lines += [
        "",
        f"Whole run: {time.monotonic() - started:.0f} s on {len(_cores())} cores; load average"
        f" at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 minutes),"
        f" {load_at_start:.1f} at the start.",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n", encoding="utf-8")
    summary.write("dedup", summary_rows(through_store, costs), argv)
    return 0


def summary_rows(through_store: Score, costs: Sequence[Cost]) -> list[summary.Row]:
    """The labelled pairs' precision and recall; each store size's cost per entry against
    the smallest's (a table's first row alone only when it has no other)."""
    s = through_store
    rows = [
        summary.Row(
            f"near-duplicates: {s.tp + s.fp + s.fn + s.tn:,} labelled pairs, through the store",
            f"precision {s.precision:.3f}, recall {s.recall:.3f}",
        )
    ]
    compared = {c.first_label for c in costs if c.label != c.first_label}
    for c in costs:
        if c.label == c.first_label and c.label in compared:
            continue  # the reference of the rows after it
        work = f"cost per new entry, {c.label} stored items"
        ours = f"{c.median_ms:.2f} ms median ({c.mean_ms:.2f} mean)"
        if c.label == c.first_label:
            rows.append(summary.Row(work, ours))
            continue
        ratio = c.median_ms / c.first_median_ms
        reference = f"{c.first_label} stored: {c.first_median_ms:.2f} ms median"
        rows.append(summary.Row(work, ours, reference, ratio, *summary.against(ratio, at_most=1.5)))
    return rows


def _cores() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else {0}


if __name__ == "__main__":
    sys.exit(main())
