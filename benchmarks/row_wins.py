"""How often the committed searches won each row of issue 6's table, and what those rates give
one search's chance of winning every seed row, if the rows and searches were independent.

    python benchmarks/row_wins.py [--since 15]

Reads benchmarks/results/beat_seeds_vN_results.json (beat_seeds.py's retrains, one per search;
reruns and re-scorings are in files with other names and are not counted). docs/search-record.md
quotes its output after each search since v32.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from collections.abc import Iterator

from _studies import ROOT
from beat_seeds import seed_rows

RESULTS = re.compile(r"beat_seeds_v(\d+)_results\.json")


def retrains(since: int, until: float = math.inf) -> Iterator[tuple[int, list[dict]]]:
    """(search number, its table rows) of each beat_seeds_vN_results.json with since <= N <=
    until, in file-name order."""
    for path in sorted((ROOT / "benchmarks" / "results").iterdir()):
        m = RESULTS.fullmatch(path.name)
        if m and since <= int(m.group(1)) <= until:
            yield int(m.group(1)), json.loads(path.read_text())


def main(since: int) -> None:
    won, runs, searches = Counter(), Counter(), []
    for search, rows in retrains(since):
        searches.append(search)
        for row in rows:
            runs[row["row"]] += 1
            won[row["row"]] += bool(row["beats"])
    print(f"searches: {', '.join(f'v{v}' for v in sorted(searches))}")
    print("| row | won | of |\n|---|---:|---:|")
    for row in runs:
        print(f"| {row} | {won[row]} | {runs[row]} |")
    chance, rows = 1.0, seed_rows()
    for _, name in rows:
        chance *= won[name] / runs[name]
    print(f"all {len(rows)} seed rows in one search, rows independent: {100 * chance:.1f}%")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--since", type=int, default=15, help="first search counted (default 15: the warm starts)")
    main(ap.parse_args().since)
