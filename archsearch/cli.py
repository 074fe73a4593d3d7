"""Command line: argument parsing and printing only; the work is in api.py.

A mistake the user can fix (an ArchsearchError) ends as one line on stderr ("archsearch
CMD: error: what; what to do") and exit code 2. Anything else is a bug: it keeps its
traceback (exit 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import __version__


from .errors import ArchsearchError as UserError


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + error; we print one line
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _int_from(s: str, low: int, high: int | None = None, what: str = "") -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < low or (high is not None and v > high):
        raise argparse.ArgumentTypeError(what or f"must be {'a positive integer' if low == 1 else '0 or more'}, "
                                         f"got {s}")
    return v


def positive_int(s: str) -> int:
    return _int_from(s, 1)


def nonnegative_int(s: str) -> int:
    return _int_from(s, 0)


def port_number(s: str) -> int:
    return _int_from(s, 1, 65535, f"a port is 1 to 65535, got {s}")


def duration(s: str) -> float:
    """--timeout: 90, 90s, 30m, 2h."""
    from .api import seconds
    try:
        return seconds(s)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# Shared option groups ------------------------------------------------------------------

def add_model_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", metavar="NAME", help="a named architecture (see 'archsearch presets')")
    src.add_argument("--config", metavar="FILE", help="a config.json written by 'archsearch export', or a genome JSON")


def add_data_options(p: argparse.ArgumentParser, dataset: bool = True, advanced=None, compile: bool = True) -> None:
    """--dataset, --data-dir, --device; --precision and --compile go to `advanced` if given."""
    from . import default_data_dir
    if dataset:
        p.add_argument("--dataset", default=None if advanced is not None else "mnist",
                       help="mnist, fashion-mnist, kmnist, cifar10, a path to an .npz with x_train, y_train, "
                            "x_test, y_test, or a folder of images with one subfolder per class (default: mnist)")
    p.add_argument("--data-dir", default=None,
                   help=f"where datasets live or are downloaded to (default: $ARCHSEARCH_DATA or data/; now "
                        f"{default_data_dir()})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto = cuda if present)")
    adv = advanced if advanced is not None else p
    adv.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                     help="auto = bf16 on CUDA, fp32 on CPU (on AMX CPUs bf16 cost 0.1 points for 1.13x speed)")
    if compile:
        adv.add_argument("--compile", action="store_true", help="torch.compile each model (CUDA only)")


def add_train_size(p) -> None:
    """--train-size, --image-size, --channels: what part of the data, at what shape."""
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N images of the (shuffled, seeded) training split: quick runs, tests")
    p.add_argument("--image-size", type=positive_int, metavar="N",
                   help="resize the images to N x N (bilinear, antialiased; default: as stored)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="convert to 1 (grayscale) or 3 (RGB) channels")


def add_study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", help="study name (default: derived from dataset and budget, e.g. mnist-b10000)")
    p.add_argument("--storage", help="any Optuna storage URL (default: sqlite:///studies/<study>.db)")


def _front_table(rows: list[dict]) -> str:
    lines = [f"{'trial':>5} {'params':>8} {'MACs':>11} {'int8 B':>8} {'RAM B':>8} {'val acc':>8} {'test acc':>8} "
             f"{'epochs':>6}  architecture"]
    for r in rows:
        test = f"{r['test_acc']:.2f}" if r["test_acc"] is not None else "-"
        label = f"[{r['preset']}] " if r.get("preset") else ""
        lines.append(f"{r['trial']:>5} {r['params']:>8,} {r['flops'] or 0:>11,} {r['int8_bytes'] or 0:>8,} "
                     f"{r['peak_ram'] or 0:>8,} {r['val_acc']:>8.2f} {test:>8} {r['epochs'] or 0:>6}  {label}{r['arch']}")
    return "\n".join(lines)


# Commands ---------------------------------------------------------------------------

def cmd_presets(args) -> int:
    from .model import figures
    from .presets import PRESETS
    rows = [{"name": p.name, "kind": p.kind, **(f := figures(p.genome)), "flops": f["macs"],
             "reported": p.reported, "source": p.source,
             **({k: p.measured[k] for k in ("test_acc_mean", "test_acc_std", "test_accs")} if p.measured else {})}
            for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'preset':<12} {'params':>8} {'MACs':>11} {'int8 B':>8} {'RAM B':>8}  test accuracy (seeds: as published; "
          f"found: measured)")
    for r in rows:
        print(f"{r['name']:<12} {r['params']:>8,} {r['macs']:>11,} {r['int8_bytes']:>8,} {r['peak_ram']:>8,}  "
              f"{r['reported']}")
    return 0


def cmd_show(args) -> int:
    from .api import load_model
    from .model import figures, layer_table
    name, genome, cfg = load_model(args.preset or args.config)
    rows = layer_table(genome)
    out = {"name": name, **(f := figures(genome)), "flops": f["macs"], "layers": rows,
           "architecture": genome.describe(), "genome": genome.to_dict(), "train": cfg.to_dict()}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{name}: {genome.describe()}")
    print(f"{'Layer (type)':<24} {'Output Shape':>16} {'Param #':>9} {'FLOPs':>12}")
    print("=" * 64)
    for r in rows:
        shape = "[-1, " + ", ".join(map(str, r["shape"])) + "]"
        print(f"{r['layer']:<24} {shape:>16} {r['params']:>9,} {r['flops']:>12,}")
    print("=" * 64)
    print(f"Total params: {out['params']:,}")
    print(f"FLOPs per image: {out['flops']:,} (multiply-accumulates of conv and linear layers)")
    print(f"int8 weights: {out['int8_bytes']:,} bytes (1 per weight, an int32 bias per output channel, BN folded)")
    print(f"peak RAM: {out['peak_ram']:,} bytes (int8 activations, layer by layer: the largest input + output)")
    return 0


def cmd_train(args) -> int:
    from . import api
    log = lambda s: print(s, file=sys.stderr if args.json else sys.stdout, flush=True)
    out = api.train(args.preset or args.config, args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                    seeds=args.seeds, seed=args.seed, train_size=args.train_size, image_size=args.image_size,
                    channels=args.channels, data_dir=args.data_dir,
                    device=args.device, precision=args.precision, compile=args.compile, log=log, progress=True)
    if args.json:
        print(json.dumps(out))
    else:
        n = len(out["test_accs"])
        print(f"test accuracy {out['test_acc_mean']:.2f} ± {out['test_acc_std']:.2f} % (final epoch, {n} "
              f"seed{'s' * (n > 1)}); {out['params']:,} params; {out['epoch_seconds']:.1f} s/epoch")
    return 0


def cmd_run(args) -> int:
    import optuna

    from . import api, engine, signals, studies
    from tqdm import tqdm
    signals.stop_on_signals()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our trial lines say what its log lines would
    state: dict = {}

    def opened(info: dict) -> None:
        s = info["settings"]
        print(f"study {info['name']!r} in {studies.mask_url(info['url'])}: "
              f"{'created' if info['created'] else 'resumed'}, {info['done']} of {args.trials} trials finished; "
              f"{s.dataset}, budget {s.budget:,} params, {s.epochs} epochs, {info['train_images']:,} training / "
              f"{info['val_images']:,} validation images, {info['device']} {info['precision']}; pruning at epochs "
              f"{s.rungs or 'off'}" + (f"; {args.jobs} workers" if args.jobs > 1 else ""), flush=True)
        # One line on a terminal: trials, elapsed (and time left with --timeout), then engine.status
        # (tqdm puts ", " before the postfix).
        bar = tqdm(total=args.trials, initial=min(info["done"], args.trials), file=sys.stderr, disable=None,
                   dynamic_ncols=True, bar_format="{n_fmt}/{total_fmt} trials, {elapsed} elapsed{desc}{postfix}")
        state.update(info, bar=bar, started=time.monotonic())
        show_status()

    def show_status() -> None:
        bar = state["bar"]
        if args.timeout:
            left = max(0, int(args.timeout - (time.monotonic() - state["started"])))
            bar.set_description_str(f", {left // 60}:{left % 60:02d} left", refresh=False)
        bar.set_postfix_str(engine.status(state["study"]))

    def on_trial(t) -> None:  # a finished trial, or a line about a worker
        bar = state["bar"]
        bar.write(t if isinstance(t, str) else engine.trial_line(t), file=sys.stdout)
        bar.update(0 if isinstance(t, str) or not engine.counts(t) else 1)
        show_status()

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    shown = [studies.mask_url(a) if "://" in a else a for a in sys.argv[2:]]  # no password on the screen
    resume = f"archsearch run {' '.join(shown)}" if sys.argv[1:2] == ["run"] else "the same command"
    try:
        study = api.search(args.dataset, args.budget, trials=args.trials, timeout=args.timeout, epochs=args.epochs,
                           seed=args.seed, train_size=args.train_size, image_size=args.image_size,
                           channels=args.channels, max_macs=args.max_macs, max_ram=args.max_ram,
                           config=args.search_config,
                           study=args.study, storage=args.storage, data_dir=args.data_dir, device=args.device,
                           precision=args.precision, compile=args.compile, jobs=args.jobs, on_open=opened,
                           on_trial=on_trial)
    except api.WorkersStopped as e:
        close()
        print(f"{e}; resume with: {resume}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        close()
        term = isinstance(e, signals.Terminated)
        print(f"\n{'terminated' if term else 'interrupted'}: running trials are marked FAIL "
              f"and will be re-run; resume with: {resume}", file=sys.stderr)
        return 143 if term else 130
    close()
    rows = studies.front(study)
    print(f"\n{engine.status(study)}")
    print(f"Pareto front ({len(rows)} trials) of {engine.finished_count(study)} finished:")
    print(_front_table(rows))
    flags = f"--study {state['name']}" + (f" --storage {studies.mask_url(state['url'])}" if args.storage else "")
    print(f"\nnext: archsearch dashboard {flags}\n      archsearch pareto {flags}\n"
          f"      archsearch export {flags} --max-params N --out DIR")
    return 0


def open_existing_study(args):
    from .api import open_study
    return open_study(args.study, args.storage)


def cmd_pareto(args) -> int:
    from . import studies
    study, _ = open_existing_study(args)
    rows = studies.front(study)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("trial", "params", "flops", "int8_bytes", "peak_ram", "val_acc",
                                             "test_acc", "epochs")} for r in rows]))
    else:
        print(f"Pareto front of {study.study_name} ({len(rows)} trials):")
        print(_front_table(rows))
    return 0


FILES = ("config.json", "model.py", "weights.pt", "model.onnx", "model.int8.onnx")  # what export writes


def cmd_export(args) -> int:
    from . import api
    study, url = open_existing_study(args)
    if args.rescore and args.trial is not None:
        raise UserError("--rescore re-ranks the best trials under a size; use it with --max-params, not --trial")
    if args.pick and (args.trial is not None or args.rescore):
        raise UserError(f"--pick chooses among the trials under a size; drop it with "
                        f"{'--trial' if args.trial is not None else '--rescore'}")
    log = lambda s: print(s, file=sys.stderr, flush=True)
    if args.trial is not None and (args.max_macs or args.max_ram):
        raise UserError("--max-macs and --max-ram choose among the trials; drop them with --trial")
    out = api.export(study, args.out, max_params=args.max_params, max_macs=args.max_macs, max_ram=args.max_ram,
                     trial=args.trial, pick=args.pick or "se", onnx=args.format == "onnx" or args.int8,
                     int8=args.int8,
                     force=args.force, retrain=args.retrain, rescore=args.rescore, rescore_seeds=args.rescore_seeds,
                     data_dir=args.data_dir, device=args.device, precision=args.precision, log=log)
    cfg = json.loads((out / "config.json").read_text())
    m, n = cfg["metrics"], cfg["provenance"]["trial"]
    test = f"{m['test_acc']:.2f}%" if m["test_acc"] is not None else "-"
    print(f"trial {n}: {m['params']:,} params, val {m['val_acc']:.2f}%, test {test}; "
          f"{study.trials[n].user_attrs.get('arch')}")
    print(f"wrote {', '.join(str(f) for f in sorted(out.iterdir()) if f.name in FILES)}")
    print(f"verify: archsearch train --config {out / 'config.json'} --seeds 3")
    return 0


def cmd_dashboard(args) -> int:
    from . import dashboard, studies
    from .bundle import artifact_dir
    from .optuna_internals import storage_of
    from .signals import stop_on_signals
    study, url = open_existing_study(args)
    try:
        dashboard.check_port(args.host, args.port)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
                        f"pick another with --port") from None
    dashboard.refresh(study)
    stop_on_signals()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard for {studies.mask_url(url)} at http://{host}:{args.port}/dashboard/ "
          f"(study {study.study_name!r}); Ctrl-C stops it", flush=True)
    try:  # Ctrl-C arrives as KeyboardInterrupt, SIGTERM as Terminated (signals.py)
        dashboard.serve(storage_of(study), args.host, args.port, artifact_dir(url, study.study_name))
    except KeyboardInterrupt:
        pass
    print("dashboard stopped", file=sys.stderr)
    return 0


# Parser -----------------------------------------------------------------------------

def build_parser(help_all: bool = False) -> argparse.ArgumentParser:
    """help_all: show the advanced options of `run` in its --help (`run --help-all`)."""
    ap = OneLineParser(prog="archsearch", description="Search compact CNNs under a hard parameter budget.")
    ap.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("run", help="search architectures + hyperparameters under --budget; resumes a study",
                       description="Multi-objective search (max validation accuracy, min parameters) in an Optuna "
                                   "study. Every model is within the budget by construction. The study keeps its "
                                   "settings: resume it with --study NAME (and --trials or --timeout) alone.")
    p.add_argument("--budget", type=positive_int, help="hard limit on trainable parameters (needed for a new study)")
    p.add_argument("--max-macs", type=positive_int, metavar="N",
                   help="also at most N multiply-accumulates per image (compute on a device)")
    p.add_argument("--max-ram", type=positive_int, metavar="BYTES",
                   help="also at most BYTES of int8 activations alive at once, layer by layer (RAM on a device)")
    p.add_argument("--trials", type=positive_int, default=100,
                   help="finished trials the study should hold in total; a resumed run continues to N (default 100)")
    p.add_argument("--timeout", type=duration, help="stop starting new trials after this long: 90s, 30m, 2h")
    p.add_argument("--epochs", type=positive_int, help="epochs per trial (default 15)")
    p.add_argument("--seed", type=int, help="seed of the sampler and of each trial's training (default 0)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="worker processes on this machine sharing the study (CPU cores are split between them; "
                        "several GPUs are used round robin)")
    p.add_argument("--search-config", metavar="FILE",
                   help="TOML or JSON file of search-method settings for a new study (sampler, eta, starts, ...; "
                        "see the README)")
    add_study_options(p)
    adv = p.add_argument_group("advanced (shown by --help-all)")
    add_data_options(p, advanced=adv)
    add_train_size(adv)
    p.add_argument("--help-all", action="store_true", help="show the advanced options too")
    if not help_all:
        for a in adv._group_actions:
            a.help = argparse.SUPPRESS
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("pareto", help="print the Pareto front (val accuracy vs params) of a study",
                       description="Print the current Pareto front of any study, running or finished.")
    add_study_options(p)
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {trial, params, flops, val_acc, test_acc, epochs}")
    p.set_defaults(func=cmd_pareto)

    p = sub.add_parser("dashboard", help="serve optuna-dashboard on a study, with archsearch's figures and notes",
                       description="Serve optuna-dashboard on the study's storage (Pareto view, our figures of the "
                                   "front, learning curves and hypervolume, a note per trial). Ctrl-C stops it.")
    add_study_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8080, help="port (default 8080)")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("export", help="write config.json, model.py and weights.pt of a chosen trial",
                       description="Export a COMPLETE trial at or under the study's budget (--max-params N: at or "
                                   "under N), by default the largest whose validation accuracy is within one "
                                   "standard error of the best there (--pick); --trial N exports that one.")
    add_study_options(p)
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--max-params", type=positive_int, metavar="N", help="pick among the trials with <= N params")
    p.add_argument("--max-macs", type=positive_int, metavar="N", help="pick among the trials with <= N MACs per image")
    p.add_argument("--max-ram", type=positive_int, metavar="BYTES",
                   help="pick among the trials with <= BYTES of peak int8 activation memory")
    pick.add_argument("--trial", type=nonnegative_int, metavar="N", help="this trial number")
    p.add_argument("--pick", choices=("se", "best"), help="se (default): the largest trial whose validation "
                   "accuracy is within one binomial standard error of the best (one validation run cannot tell "
                   "them apart, and the larger usually retrains better); best: the best validation accuracy")
    p.add_argument("--out", metavar="DIR", help="output folder (default exports/<study>-trial<N>)")
    p.add_argument("--force", action="store_true", help="overwrite config.json/model.py/weights.pt in --out")
    p.add_argument("--format", choices=("pytorch", "onnx"), default="pytorch",
                   help="onnx: also model.onnx, input normalisation inside, checked with onnxruntime (needs "
                        "pip install -e '.[deploy]')")
    p.add_argument("--int8", action="store_true",
                   help="also model.int8.onnx: static int8 quantization calibrated on training images, its test "
                        "accuracy beside the float model's in config.json")
    p.add_argument("--retrain", action="store_true",
                   help="train the trial again (same data split, config, seed) instead of using stored weights")
    p.add_argument("--rescore", type=positive_int, metavar="K",
                   help="train the K most accurate trials at or under the size again on fresh seeds and export "
                        "the best by their mean validation accuracy (one run's score is noisy; results are kept "
                        "in the study)")
    p.add_argument("--rescore-seeds", type=positive_int, default=2, metavar="R",
                   help="fresh training runs per candidate with --rescore (default 2)")
    add_data_options(p, dataset=False, compile=False)  # for --retrain and --rescore
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train a preset or exported config on the full training set; report test acc",
                       description="Train on the full training set (train + validation split) and report the "
                                   "final-epoch test accuracy, mean ± std over --seeds runs.")
    add_model_source(p)
    add_data_options(p)
    add_train_size(p)
    p.add_argument("--epochs", type=positive_int, help="override the config's epochs")
    p.add_argument("--batch-size", type=positive_int, help="override the config's batch size")
    p.add_argument("--seeds", type=positive_int, default=1, help="independent runs to average (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed; runs use seed, seed+1, ... (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("show", help="layer table of a preset or config: output shapes, params, FLOPs",
                       description="Print a torchsummary-style layer table with exact parameter and FLOP counts.")
    add_model_source(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (params, flops, layers)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("presets", help="list the named architectures with their parameter counts",
                       description="List presets: the seven hand-designed seed models (with their published "
                                   "accuracy) and the models archsearch found that beat them (with the accuracy "
                                   "measured by retraining them: benchmarks/beat_seeds.py).")
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, params, ...}")
    p.set_defaults(func=cmd_presets)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = build_parser(help_all="--help-all" in argv)
    if "--help-all" in argv:
        ap.parse_args([a for a in argv if a != "--help-all"][:1] + ["--help"])
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as e:
        print(f"archsearch {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"archsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
