"""One model, four ways to train it: batch 64 vs 32 and fp32 vs bf16, side by side.

The evidence behind changes 13 (batch 32 back in the search space) and 14 (fp32 by
default on every CPU) in docs/search-record.md. Each variant is
`archsearch train --config VARIANT.json --epochs 15 --seeds 3 --precision P --json` on all
60,000 MNIST training images (final-epoch test accuracy), two variants at a time, one
thread each:

    python benchmarks/recipe_check.py [--preset mnist-6.6k] [--seeds 3] [--work runs/recipe-check]

Prints the table and writes it to benchmarks/results/recipe_check.md. A rerun skips the
variants already trained under --work.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from archsearch.presets import PRESETS  # noqa: E402
from beat_seeds import in_lanes  # noqa: E402

# name -> (batch size, lr as a multiple of the preset's, precision)
VARIANTS = {
    "own recipe (fp32)": (None, 1.0, "fp32"),
    "own recipe, bf16": (None, 1.0, "bf16"),
    "batch 32, same lr": (32, 1.0, "fp32"),
    "batch 32, lr / 2": (32, 0.5, "fp32"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist-6.6k")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "recipe-check")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    p = PRESETS[a.preset]
    jobs, files = [], {}
    for i, (name, (batch, lr_x, precision)) in enumerate(VARIANTS.items()):
        cfg = replace(p.train, batch_size=batch or p.train.batch_size, lr=p.train.lr * lr_x)
        config = a.work / f"variant{i}.json"
        config.write_text(json.dumps({"name": f"{a.preset} ({name})", "genome": p.genome.to_dict(),
                                      "train": cfg.to_dict()}))
        files[name] = a.work / f"variant{i}.out.json"
        if not files[name].exists():
            jobs.append((files[name].name, ["train", "--config", str(config), "--epochs", "15", "--seeds",
                                            str(a.seeds), "--precision", precision, "--json"]))
    failed = [n for n, code in in_lanes([[job] for job in jobs], a.work, a.lanes, a.work / "log.txt").items() if code]
    if failed:
        sys.exit(f"archsearch train failed for {', '.join(failed)}; see their .err files in {a.work}")

    lines = [f"# {a.preset}, four ways ({platform.machine()}, {time.strftime('%Y-%m-%d')})", "",
             f"`archsearch train --config ... --epochs 15 --seeds {a.seeds}`, 60,000 training images, final-epoch "
             f"test accuracy; two variants at a time, one thread each.", "",
             "| variant | batch | lr | precision | test acc (mean ± std) | runs | s/epoch |",
             "|---|---:|---:|---|---:|---|---:|"]
    for name, f in files.items():
        r = json.loads(f.read_text())
        lines.append(f"| {name} | {r['train']['batch_size']} | {r['train']['lr']:.4f} | {r['precision']} | "
                     f"{r['test_acc_mean']:.3f} ± {r['test_acc_std']:.3f}% | "
                     f"{', '.join(f'{x:.2f}' for x in r['test_accs'])} | {r['epoch_seconds']:.1f} |")
    table = "\n".join(lines)
    print(table)
    (ROOT / "benchmarks" / "results" / "recipe_check.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
