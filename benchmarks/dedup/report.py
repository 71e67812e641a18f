"""Markdown tables for the quality part of the benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from aggregator.stories.dedup import DedupPolicy
from benchmarks.dedup.quality import Report, Score, Verdict, kinds, score

SIGNAL_ORDER = ("canonical_url", "title", "minhash")


def _f(x: float) -> str:
    return f"{x:.3f}"


def signal_table(report: Report) -> list[str]:
    v = report.verdicts
    rows = [
        ("canonical URL", "canonical_url", v),
        ("headline, confirmed by the text", "title", v),
        ("MinHash, article texts", "minhash", [x for x in v if x.pair.group == "text"]),
        ("MinHash, title + summary", "minhash", [x for x in v if x.pair.group == "summary"]),
        ("combined (dedup.best_match)", "combined", v),
        ("**combined, through the store**", "store", v),
    ]
    out = [
        "| signal | pairs | precision | recall | F1 | TP | FP | FN |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, pick, subset in rows:
        s = score(subset, pick)
        out.append(
            f"| {label} | {len(subset)} | {_f(s.precision)} | {_f(s.recall)} | {_f(s.f1)}"
            f" | {s.tp} | {s.fp} | {s.fn} |"
        )
    return out


def _spread(members: Sequence[Verdict], same: bool) -> str:
    sims = sorted(m.similarity for m in members if m.similarity is not None)
    if not sims:
        return "-"
    edge = sims[len(sims) // 20] if same else sims[-1]  # 5th percentile / maximum
    return f"{sims[len(sims) // 2]:.2f} / {edge:.2f}"


def kind_table(report: Report) -> list[str]:
    out = [
        "| group | pair | pairs | merged (store) | by canonical / headline / MinHash"
        " | MinHash median / p5 (same) or max (different) |",
        "|---|---|---|---|---|---|",
    ]
    ordered = sorted(kinds(report.verdicts).items(), key=lambda kv: (kv[0][0], not kv[0][2]))
    for (group, kind, same), members in ordered:
        merged = sum(bool(m.in_store) for m in members)
        by = " / ".join(
            str(sum(m.combined is not None and m.combined.signal == s for m in members))
            for s in SIGNAL_ORDER
        )
        label = kind if same else f"**different:** {kind}"
        out.append(
            f"| {group} | {label} | {len(members)} | {merged} ({merged / len(members):.1%})"
            f" | {by} | {_spread(members, same)} |"
        )
    return out


def _merged_at(v: Verdict, policy: DedupPolicy) -> tuple[bool, bool]:
    """(MinHash alone, all signals) had the thresholds been `policy`'s."""
    if v.similarity is None or not v.in_band:
        minhash = False
    elif v.pair.group == "text":
        minhash = v.similarity >= policy.threshold
    else:
        feeds_apart = v.pair.first.feed != v.pair.second.feed
        minhash = feeds_apart and v.similarity >= policy.summary_threshold
    others = v.signals["canonical_url"] is not None or v.signals["title"] is not None
    return minhash, minhash or others


def sweep_table(
    report: Report, group: str, thresholds: Sequence[float], policy: DedupPolicy
) -> list[str]:
    """What other MinHash thresholds would have done (headline confirmation unchanged)."""
    subset = [v for v in report.verdicts if v.pair.group == group]
    out = [
        f"| {group} threshold | MinHash alone: precision | recall | all signals: precision"
        " | recall | false merges |",
        "|---|---|---|---|---|---|",
    ]
    for t in thresholds:
        moved = (
            replace(policy, threshold=t)
            if group == "text"
            else replace(policy, summary_threshold=t)
        )
        alone, combined = Score(), Score()
        for v in subset:
            by_minhash, by_any = _merged_at(v, moved)
            alone.add(v.pair.same, by_minhash)
            combined.add(v.pair.same, by_any)
        out.append(
            f"| {t:.2f} | {_f(alone.precision)} | {_f(alone.recall)} | {_f(combined.precision)}"
            f" | {_f(combined.recall)} | {combined.fp} |"
        )
    return out
