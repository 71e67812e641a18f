"""Score `extract_article` on the extraction-eval corpus, beside plain trafilatura.

    .venv/bin/python benchmarks/extraction_f1.py [--corpus DIR] [--processes N]

Scoring as ../shared/corpora/README.md defines it: a snippet is found when it occurs in the
extracted text, whitespace collapsed on both sides. Found `with` snippets are true positives,
missed ones false negatives, found `without` snippets false positives; counts are pooled over
all documents and F1 = 2TP / (2TP + FP + FN). A page we refuse (ExtractError) scores as empty.

The baseline is `trafilatura.extract(html)` with default options, the HTML decoded the way
trafilatura decodes bytes itself (`trafilatura.utils.decode_file`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run as a script from a checkout, without installing

from aggregator.errors import ExtractError  # noqa: E402
from aggregator.extract.article import extract_article  # noqa: E402
from benchmarks import summary  # noqa: E402

DEFAULT_CORPUS = PROJECT.parent / "shared" / "corpora" / "extraction-eval"


@dataclass(frozen=True)
class Case:
    url: str
    path: Path
    with_: tuple[str, ...]
    without: tuple[str, ...]


@dataclass(frozen=True)
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    empty: int = 0  # documents that produced no text at all

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.tp, self.fp, self.fn, self.empty)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0


def load_cases(corpus: Path) -> list[Case]:
    """evaldata.json's entries; each `file` lives in eval/ or cache/."""
    data = json.loads((corpus / "evaldata.json").read_text(encoding="utf-8"))
    cases = []
    for url, item in data.items():
        path = next(
            (
                p
                for p in (corpus / "eval" / item["file"], corpus / "cache" / item["file"])
                if p.is_file()
            ),
            None,
        )
        if path is None:
            raise SystemExit(f"{item['file']} is in neither eval/ nor cache/ of {corpus}")
        cases.append(Case(url, path, tuple(item["with"]), tuple(item["without"])))
    return cases


def score(text: str, case: Case) -> Score:
    def found(snippet: str) -> bool:
        return " ".join(snippet.split()) in text

    text = " ".join(text.split())
    tp = sum(map(found, case.with_))
    return Score(tp=tp, fp=sum(map(found, case.without)), fn=len(case.with_) - tp, empty=not text)


def ours(case: Case) -> Score:
    try:
        text = extract_article(case.path.read_bytes(), url=case.url).text
    except ExtractError:
        text = ""
    return score(text, case)


def baseline(case: Case) -> Score:
    import trafilatura
    from trafilatura.utils import decode_file

    return score(trafilatura.extract(decode_file(case.path.read_bytes())) or "", case)


def run(
    name: str, job: Callable[[Case], Score], cases: list[Case], processes: int
) -> tuple[str, Score, float]:
    started = time.perf_counter()
    with Pool(processes) as pool:
        scores = pool.map(job, cases, chunksize=8)
    return name, sum(scores, Score()), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if not (args.corpus / "evaldata.json").is_file():
        raise SystemExit(f"no evaldata.json in {args.corpus}; pass --corpus")
    cases = load_cases(args.corpus)
    rows = [
        run("extract_article", ours, cases, args.processes),
        run("trafilatura.extract", baseline, cases, args.processes),
    ]
    print(f"{len(cases)} documents, {args.processes} processes")
    print(
        f"{'':20} {'P':>6} {'R':>6} {'F1':>6} {'TP':>5} {'FP':>5} {'FN':>5} {'empty':>5} "
        f"{'docs':>5} {'seconds':>8} {'docs/s':>7}"
    )
    for name, total, seconds in rows:
        print(
            f"{name:20} {total.precision:6.4f} {total.recall:6.4f} {total.f1:6.4f} "
            f"{total.tp:5} {total.fp:5} {total.fn:5} {total.empty:5} {len(cases):5} "
            f"{seconds:8.1f} {len(cases) / seconds:7.1f}"
        )
    (_, mine, my_time), (_, base, base_time) = rows
    print(f"ratio ours/baseline: F1 {mine.f1 / base.f1:.4f}, time {my_time / base_time:.2f}x")
    summary.write("extraction_f1", summary_rows(len(cases), rows))


def summary_rows(documents: int, rows: list[tuple[str, Score, float]]) -> list[summary.Row]:
    """Our F1 beside trafilatura's on the same pages; the ratio is F1 against F1."""
    (_, mine, my_time), (_, base, base_time) = rows
    return [
        summary.Row(
            f"extraction quality: {documents} pages of the extraction-eval corpus",
            f"F1 {mine.f1:.4f} (P {mine.precision:.4f}, R {mine.recall:.4f}), {my_time:.1f} s",
            f"trafilatura.extract F1 {base.f1:.4f}, {base_time:.1f} s",
            mine.f1 / base.f1 if base.f1 else None,
        )
    ]


if __name__ == "__main__":
    main()
