"""Two pick rules on the committed searches, judged by each pick's own test accuracy in the
search (one run on 55,000 training images): `export --pick best` (best validation accuracy, ties to
the smaller model; export's default before change 34) and `--pick se` (the largest model within one
binomial standard error of that best; the default since); and, where both picks' genome and
recipe have a retrain on record (pick_rules.retrained), the two retrains.

    python benchmarks/pick_rules.py [SEARCH ...]   (benchmarks/results/studies/mnist-b20000-SEARCH.db)

docs/search-record.md ("Search v20's retrains") quotes its output.
"""
from __future__ import annotations

import argparse
import json
import re

from _studies import PUBLISHED, load
from beat_seeds import ROOT, seed_rows
from row_wins import retrains

from archsearch.export import ExportError, pick

SEED_SIZES = [size for size, _ in seed_rows()]


def recipe(genome: dict, train: dict) -> str:
    return json.dumps({"genome": genome, "train": train}, sort_keys=True)


def retrained() -> dict[str, float]:
    """Every retrained config's 3-seed mean test accuracy (%), by its genome and recipe: the
    searches' picks, then the configs benchmarks/seed_spread.py retrained (seeds 0-2 of a
    seed_spread_*.md row whose config is benchmarks/results/<model>.json). A config retrained
    more than once keeps the first search's mean (the same seeds, other machines)."""
    results = ROOT / "benchmarks" / "results"
    means = {(v, row["trial"]): row["mean"] for v, rows in retrains(0) for row in rows if row.get("mean") is not None}
    keyed = {(int(re.search(r"v(\d+)_picks", str(p)).group(1)), int(re.search(r"trial(\d+)", p.name).group(1))): p
             for p in results.glob("v*_picks/trial*.json")}
    found = {}
    for key in sorted(k for k in keyed if k in means):  # by search number, so the first search's mean is kept
        c = json.loads(keyed[key].read_text())
        found.setdefault(recipe(c["genome"], c["train"]), means[key])
    for md in sorted(results.glob("seed_spread*.md")):
        for model, accs in re.findall(r"^\| (\S+) \| [\d,]+ \| ([\d., ]+) \|", md.read_text(), re.M):
            config, accs = results / f"{model}.json", [float(x) for x in accs.split(", ")]
            if config.is_file() and len(accs) >= 3:  # a table row whose config is committed
                c = json.loads(config.read_text())
                found.setdefault(recipe(c["genome"], c["train"]), sum(accs[:3]) / 3)
    return found


def cell(t) -> str:
    return f"{int(t.values[1]):,}, {t.values[0]:.2f}, {t.user_attrs['test_acc']:.2f}"


def main(searches: list[str]) -> None:
    studies = load([f"mnist-b20000-{v}" for v in searches], PUBLISHED)
    print("| search | row | best validation: params, val, test | largest within 1 SE: params, val, test | test change |")
    print("|---|---:|---|---|---:|")
    changes, paired, known = [], {}, retrained()
    tables = {f"v{n}": {row["size"]: row for row in rows} for n, rows in retrains(0)}
    won = {"best": 0, "se": 0, "unknown": 0}  # seed rows won in the searches' tables, by the table's pick
    for v, study in zip(searches, studies):
        for size in SEED_SIZES:
            try:
                a = pick(study, size, rule="best")  # export --max-params SIZE --pick best
            except ExportError:  # no COMPLETE trial at this size
                continue
            b = pick(study, size, rule="se")
            row = tables.get(v, {}).get(size)
            rb = known.get(recipe(b.user_attrs["genome"], b.user_attrs["train"]))
            if row is not None and row["trial"] == a.number:  # the table retrained the best validation score
                won["best"] += row["beats"]
                if a.number == b.number or rb is not None:
                    won["se"] += row["beats"] if a.number == b.number else rb >= row["target"] - 1e-9
                else:
                    won["unknown"] += 1
            if a.number == b.number:
                print(f"| {v} | {size:,} | {cell(a)} | same | |")
                continue
            changes.append(b.user_attrs["test_acc"] - a.user_attrs["test_acc"])
            ra = known.get(recipe(a.user_attrs["genome"], a.user_attrs["train"]))
            if ra is not None and rb is not None:
                paired.setdefault((int(a.values[1]), int(b.values[1]), ra, rb), []).append(f"{v} {size:,}")
            print(f"| {v} | {size:,} | {cell(a)} | {cell(b)} | {changes[-1]:+.2f} |")
    print(f"\n{len(changes)} picks change: {sum(d > 0 for d in changes)} up, {sum(d < 0 for d in changes)} down, "
          f"{sum(d == 0 for d in changes)} equal; mean change {sum(changes) / max(1, len(changes)):+.3f} points")
    print("\nChanged picks whose two configs both have a retrain (3 seeds, final epoch, test set):\n")
    print("| best validation: params, retrain | largest within 1 SE: params, retrain | change | rows |")
    print("|---|---|---:|---|")
    for (pa, pb, ra, rb), rows in sorted(paired.items(), key=lambda kv: kv[1][0]):
        print(f"| {pa:,}, {ra:.3f} | {pb:,}, {rb:.3f} | {rb - ra:+.3f} | {'; '.join(rows)} |")
    d = [rb - ra for _, _, ra, rb in paired]
    if d:
        print(f"\n{len(d)} distinct pairs: {sum(x > 0 for x in d)} up, {sum(x < 0 for x in d)} down; "
              f"mean change {sum(d) / len(d):+.3f} points")
    print(f"\nSeed rows won in the searches' tables: {won['best']} by the best validation score, {won['se']} "
          f"by the largest within 1 SE, where {won['unknown']} changed rows whose new pick has no retrain "
          f"count as lost")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("searches", nargs="*", default=["v15", "v16", "v18", "v19", "v20"], metavar="SEARCH")
    main(parser.parse_args().searches)
