"""What the PII scrubber masks of personal data it was not written against, what it masks that is
none, and what it costs: recall per kind on the Faker oracle, false positives and throughput on the
real CFPB narratives, for the scrubber and (`--before-rev`) an earlier version of it, side by side.

- Recall: the share of each kind's values (bench/pii_oracle.py: Faker, several locales, seeded, in
  complaint-like sentences) whose every digit (numbers) or letter and digit is masked.
- False positives: words the scrubber changes in ../shared/data/cfpb/narratives_by_product.csv,
  which the CFPB has already masked (so each one is very likely not personal data), over all words.
- Throughput: narratives a second through `find_pii_many` (ingestion, the quality check) and
  through `scrub` one at a time (the endpoint), best of the repeats, versions in turns.

    .venv/bin/python bench/pii_recall.py [--per-kind N] [--repeats R] [--before-rev REV]
        [--narratives CSV] [--out FILE] [--smoke]

`--before-rev REV` imports ml_assets/privacy.py as it was at a git revision (`git show`, into a
temp folder: nothing in the work tree changes). Prints the tables and, as its last line, the
figures; writes bench/results/pii_recall.md (`--smoke`: a temp folder).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import pandas as pd

from ml_assets import privacy
from pii_oracle import KINDS, NAME, STRUCTURED_KINDS, oracle_items, recall_by_kind
from smoke import bench_parser, output_path, parse

ROOT = Path(__file__).resolve().parents[1]
NARRATIVES = ROOT.parent / "shared" / "data" / "cfpb" / "narratives_by_product.csv"
NARRATIVE_COLUMN = "Consumer complaint narrative"
SMOKE_SIZE = {"per_kind": 20, "repeats": 1}


def module_at(rev: str) -> ModuleType:
    """ml_assets/privacy.py as it was at a git revision, imported from a temp folder."""
    source = subprocess.run(
        ["git", "show", f"{rev}:ml_assets/privacy.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="pii_before_")) / "privacy_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("privacy_before", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def spans_of(module: ModuleType) -> Callable[[str], list[tuple[int, int]]]:
    """The spans a scrubber module masks in a text."""
    return lambda text: [(m.start, m.end) for m in module.find_pii(text)]


def changed_words(module: ModuleType, texts: Sequence[str]) -> tuple[int, int, list[str]]:
    """Words a scrubber changes in texts, all words, and the first changed ones."""
    changed = total = 0
    examples: list[str] = []
    for before, after in zip(texts, module.scrub_series(pd.Series(texts)), strict=True):
        words, masked = before.split(), after.split()
        total += len(words)
        changes = [w for w, m in zip(words, masked, strict=True) if w != m]
        changed += len(changes)
        examples += changes[: 12 - len(examples)]
    return changed, total, examples


def best_rate(work: Callable[[], object], count: int, repeats: int) -> float:
    """Items a second: the best of `repeats` runs of `work` over `count` items."""
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - began)
    return count / min(seconds)


def main() -> None:
    """Measure recall, false positives and throughput; print and write the tables."""
    parser = bench_parser(__doc__)
    parser.add_argument("--per-kind", type=int, default=1000, help="oracle values per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="throughput runs per version")
    parser.add_argument("--before-rev", help="a git revision of ml_assets/privacy.py to compare")
    parser.add_argument("--narratives", default=str(NARRATIVES), help="real narratives (CSV)")
    parser.add_argument("--out", help="the Markdown report (default bench/results/pii_recall.md)")
    args = parse(parser, SMOKE_SIZE)

    versions: dict[str, ModuleType] = {"now": privacy}
    if args.before_rev:
        versions[f"at {args.before_rev}"] = module_at(args.before_rev)
    items = oracle_items(args.per_kind, args.seed)
    recall = {name: recall_by_kind(items, spans_of(m)) for name, m in versions.items()}
    names = list(versions)
    lines = [
        f"# PII scrubber: recall on the Faker oracle ({args.per_kind} values per kind, seed "
        f"{args.seed}), false positives and throughput on the real narratives",
        "",
        f"`bench/pii_recall.py {' '.join(sys.argv[1:])}`",
        "",
        "| kind | " + " | ".join(f"recall ({n})" for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
        *(
            f"| {kind} | " + " | ".join(f"{recall[n][kind]:.3f}" for n in names) + " |"
            for kind in KINDS
        ),
    ]
    figures = {
        "min_structured_recall": min(recall["now"][k] for k in STRUCTURED_KINDS),
        "name_recall": recall["now"][NAME],
    }
    narratives = Path(args.narratives)
    if narratives.is_file():
        texts = pd.read_csv(narratives, usecols=[NARRATIVE_COLUMN], dtype=str)[NARRATIVE_COLUMN]
        texts = texts.dropna().tolist()
        lines += [
            "",
            f"{len(texts)} real narratives ({narratives.name}), already masked by the CFPB; "
            f"throughput best of {args.repeats}, versions in turns, on this machine "
            f"(other processes may share it).",
            "",
            "| version | words changed | of all words | texts/s `find_pii_many` "
            "| texts/s `scrub` one by one |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        rates: dict[str, list[float]] = {n: [] for n in names}
        one_by_one: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.repeats):
            for name, module in versions.items():
                rates[name].append(
                    best_rate(lambda m=module: m.find_pii_many(texts), len(texts), 1)
                )
                one_by_one[name].append(
                    best_rate(lambda m=module: [m.scrub(t) for t in texts], len(texts), 1)
                )
        for name, module in versions.items():
            changed, total, examples = changed_words(module, texts)
            share = changed / total
            figures |= {f"fp_share_{name}": share, f"texts_per_s_{name}": max(rates[name])}
            # The changed words go to the terminal only: no part of the real data is kept.
            print(f"words {name} changes: {examples}")
            lines.append(
                f"| {name} | {changed} | {share:.5%} "
                f"| {max(rates[name]):,.0f} | {max(one_by_one[name]):,.0f} |"
            )
        lines.append(
            "\nMedian texts/s `find_pii_many`: "
            + ", ".join(f"{n} {statistics.median(rates[n]):,.0f}" for n in names)
        )
    else:
        lines += [
            "",
            f"No real narratives at {narratives}: false positives and throughput not measured.",
        ]
    report = "\n".join(lines)
    print(report)
    out = output_path(args.out, "pii_recall.md", args.smoke)
    out.write_text(report + "\n")
    print(f"written {out}")
    print(
        "pii recall figures: "
        + " ".join(f"{k.replace(' ', '_')}={v:.6g}" for k, v in figures.items())
    )


if __name__ == "__main__":
    main()
