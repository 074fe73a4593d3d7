"""How far the committed searches' row picks retrained below the one validation run that picked
them (the winner's curse of `export`'s best-validation pick), and how much of a pick's lead on
validation survives the retrain, by size band.

    python benchmarks/pick_shrinkage.py [--since 15] [--until N]

Reads beat_seeds_vN_results.json (row_wins.py's files: the retrains, 3 seeds each on all 60,000
training images, final-epoch test accuracy) and each pick's trial in its committed study (its one
validation run on 5,000 images and its one test run, both trained on 55,000). A pick that serves
several rows is counted once; a config two searches picked counts once per search (its retrain is
the same, its validation run is not). docs/search-record.md ("After v37: ...") quotes the output.
"""
from __future__ import annotations

import argparse
import math
import statistics as st

from _studies import PUBLISHED, load
from row_wins import retrains

BANDS = [(1_000, 3_000), (3_000, 5_000), (5_000, 8_000), (8_000, 11_000), (11_000, 20_001)]  # params


def picks(since: int, until: int) -> list[dict]:
    """Each distinct (search, trial) retrained by beat_seeds.py in searches since-until."""
    found = {(v, row["trial"]): row["mean"] for v, rows in retrains(since, until)
             for row in rows if row.get("mean") is not None}
    searches = sorted({v for v, _ in found})
    studies = dict(zip(searches, load([f"mnist-b20000-v{v}" for v in searches], PUBLISHED)))
    out = []
    for (v, n), mean in sorted(found.items()):
        t = studies[v].trials[n]
        # the first 6 trials are the warm starts (`--starts 6`) in every search since v15
        kind = "copy" if "rescaled_from" in t.user_attrs else "start" if n < 6 else "sampled"
        out.append({"search": v, "trial": n, "kind": kind, "params": t.values[1], "val": t.values[0],
                    "test": t.user_attrs["test_acc"], "retrain": mean})
    return out


def fit(val: list[float], retrain: list[float]) -> tuple[float, float]:
    """The least-squares slope of retrain on validation, and their correlation: the slope is the
    share of a pick's lead on validation (points above its band's mean) that the retrain keeps."""
    return st.linear_regression(val, retrain).slope, st.correlation(val, retrain)


def span(xs: list[float]) -> str:
    return f"{st.mean(xs):.2f}, {min(xs):.2f}-{max(xs):.2f}"


def main(since: int, until: int) -> None:
    rows = picks(since, until)
    print(f"{len(rows)} distinct picks retrained, searches v{since}-v{max(r['search'] for r in rows)}")
    print("| picks | n | retrain - val: mean, sd | retrain - search's test run: mean, sd |")
    print("|---|---:|---:|---:|")
    for kind in ("all", "start", "copy", "sampled"):
        sel = [r for r in rows if kind in ("all", r["kind"])]
        dv, dt = [r["retrain"] - r["val"] for r in sel], [r["retrain"] - r["test"] for r in sel]
        print(f"| {kind} | {len(sel)} | {st.mean(dv):+.3f}, {st.stdev(dv):.3f} "
              f"| {st.mean(dt):+.3f}, {st.stdev(dt):.3f} |")
    print("\n| params | n | slope of retrain on val (r) | val: mean, range | retrain: mean, range |")
    print("|---|---:|---:|---|---|")
    for lo, hi in BANDS:
        sel = [r for r in rows if lo <= r["params"] < hi]
        if len(sel) < 5:
            continue
        val, ret = [r["val"] for r in sel], [r["retrain"] for r in sel]
        slope, corr = fit(val, ret)
        print(f"| {lo:,}-{hi - 1:,} | {len(sel)} | {slope:.2f} ({corr:.2f}) | {span(val)} | {span(ret)} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--since", type=int, default=15, help="first search counted (default 15: the warm starts)")
    ap.add_argument("--until", type=int, default=math.inf, help="last search counted (default: all)")
    a = ap.parse_args()
    main(a.since, a.until)
