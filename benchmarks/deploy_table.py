"""What the shipped presets cost on a device: params, MACs, int8 weight bytes, peak RAM bytes,
float and int8 test accuracy, and onnxruntime latency per image on this CPU, side by side.

    ARCHSEARCH_DATA=../shared/data python benchmarks/deploy_table.py [--epochs 15] [--out runs/deploy]

Each preset is trained once (its own recipe, all 60,000 MNIST training images, seed 0),
exported to ONNX with the normalisation inside and to static int8 (archsearch/deploy.py:
QDQ, per-channel weights, 500 training images to calibrate), and both are read on the
10,000 test images. Latency: onnxruntime on one thread, batch 1, the median of 1,000 runs
after 50 warm-up runs. Writes OUT/deploy_table.json (a small summary) and prints the table.
Needs `pip install -e '.[deploy]'`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archsearch import deploy  # noqa: E402
from archsearch.data import load  # noqa: E402
from archsearch.model import figures  # noqa: E402
from archsearch.presets import PRESETS  # noqa: E402
from archsearch.trainer import fit  # noqa: E402


def latency_ms(path: Path, image: np.ndarray, runs: int = 1000) -> float:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"image": image[None].astype(np.float32)}
    for _ in range(50):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--train-size", type=int, help="first N training images (a quick check, not the table)")
    ap.add_argument("--presets", nargs="*", default=[n for n, p in PRESETS.items() if p.kind == "found"])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "deploy")
    a = ap.parse_args()
    deploy.require()
    a.out.mkdir(parents=True, exist_ok=True)
    data = load("mnist", None, val_size=0, train_size=a.train_size)
    test_x, test_y = data.test_x.numpy(), data.test_y.numpy()
    rows = []
    for name in a.presets:
        p = PRESETS[name]
        net, _ = fit(p.genome, data, replace(p.train, epochs=a.epochs), seed=0)
        model = deploy.Normalized(net.cpu().float(), data.mean.flatten().tolist(), data.std.flatten().tolist()).eval()
        path = deploy.to_onnx(model, p.genome.in_shape, a.out / f"{name}.onnx")
        q = deploy.quantize(path, a.out / f"{name}.int8.onnx", data.train_x[:deploy.CALIBRATION_IMAGES].numpy())
        rows.append({"preset": name, **figures(p.genome), "epochs": a.epochs,
                     "float_acc": deploy.accuracy(path, test_x, test_y), "int8_acc": deploy.accuracy(q, test_x, test_y),
                     "float_ms": latency_ms(path, test_x[0]), "int8_ms": latency_ms(q, test_x[0])})
        r = rows[-1]
        print(f"{name}: float {r['float_acc']:.2f}%, int8 {r['int8_acc']:.2f}% ({r['int8_acc'] - r['float_acc']:+.2f}), "
              f"{r['float_ms']:.3f} / {r['int8_ms']:.3f} ms", flush=True)
    print(f"\n{'preset':<12} {'params':>7} {'MACs':>10} {'int8 B':>7} {'RAM B':>7} {'float %':>8} {'int8 %':>7} "
          f"{'float ms':>9} {'int8 ms':>8}")
    for r in rows:
        print(f"{r['preset']:<12} {r['params']:>7,} {r['macs']:>10,} {r['int8_bytes']:>7,} {r['peak_ram']:>7,} "
              f"{r['float_acc']:>8.2f} {r['int8_acc']:>7.2f} {r['float_ms']:>9.3f} {r['int8_ms']:>8.3f}")
    (a.out / "deploy_table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
