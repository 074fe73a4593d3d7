"""Compare two searches' fronts at equal work, from their logs, when the machine's speed
differed between them.

    python benchmarks/equal_work.py benchmarks/results/beat_seeds_v6_search.json \
        benchmarks/results/beat_seeds_v8_search.json

Each file is the search step's record from benchmarks/beat_seeds.py ({"stdout": the
`archsearch run` log}). The first 20 trials are the sampler's random start-up; where both
logs show the same parameter count and outcome for a trial number, it was the same work,
so the ratio of their durations is the machine's speed ratio. The first log is then
replayed in completion order up to the second's total trial-seconds / that ratio, and the
hypervolumes of the COMPLETE trials (val accuracy %, params) printed side by side; also at
equal trial count. docs/search-record.md (search v8) quotes the output.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archsearch.pruning import hypervolume  # noqa: E402

REFS = ((95.0, 20000), (98.0, 20000))  # as benchmarks/study_report.py
START_UP = 20  # random trials before TPE models (search.make_sampler)
# one log line: "#12     7,799 params  val  93.66%  PRUNED at epoch 1  (17 s)"
LINE = re.compile(r"#(\d+)\s+([\d,]+) params\s+val\s+([\d.]+)%\s+(.+?)\s+\((\d+) s\)")


def trials(path: str) -> list[dict]:
    """The log's finished trials in completion order."""
    out = json.loads(Path(path).read_text())["stdout"]
    return [{"n": int(n), "params": int(p.replace(",", "")), "acc": float(a), "state": st, "s": int(s)}
            for n, p, a, st, s in LINE.findall(out)]


def hv(rows: list[dict]) -> str:
    points = [(r["acc"], r["params"]) for r in rows if r["state"] == "COMPLETE"]
    return " / ".join(f"{hypervolume(points, ref):,.0f}" for ref in REFS)


def main(first: str, second: str) -> None:
    a, b = trials(first), trials(second)
    a_by, b_by = {r["n"]: r for r in a}, {r["n"]: r for r in b}
    same = [n for n in range(START_UP) if n in a_by and n in b_by
            and (a_by[n]["params"], a_by[n]["state"]) == (b_by[n]["params"], b_by[n]["state"])]
    a_s, b_s = sum(a_by[n]["s"] for n in same), sum(b_by[n]["s"] for n in same)
    ratio = b_s / a_s
    print(f"{len(same)} of the first {START_UP} trials identical in both logs: {a_s:,} trial-s in the first, "
          f"{b_s:,} in the second ({ratio:.2f}x)")
    work = sum(r["s"] for r in b) / ratio  # the second search's work, in the first machine's seconds
    replay, total = [], 0
    for r in a:
        total += r["s"]
        if total > work:
            break
        replay.append(r)
    refs = " / ".join(f"ref {acc:g}%" for acc, _ in REFS)
    print(f"\n| front at | first: trials, complete, hypervolume ({refs}) | second |")
    print("|---|---|---|")
    done = lambda rows: sum(r["state"] == "COMPLETE" for r in rows)  # noqa: E731
    print(f"| equal work ({work:,.0f} first-machine trial-s) | {len(replay)}, {done(replay)}, {hv(replay)} "
          f"| {len(b)}, {done(b)}, {hv(b)} |")
    first_n = [r for r in a if r["n"] < len(b)]
    print(f"| equal trial count ({len(b)}) | {len(first_n)}, {done(first_n)}, {hv(first_n)} "
          f"| {len(b)}, {done(b)}, {hv(b)} |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/equal_work.py FIRST_SEARCH.json SECOND_SEARCH.json")
    main(sys.argv[1], sys.argv[2])
