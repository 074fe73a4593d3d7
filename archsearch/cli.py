"""Command line: argument parsing and printing only; the work is in the library.

Every user mistake ends as one line on stderr ("archsearch CMD: error: what; what
to do") and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from pathlib import Path

from . import __version__


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit 2."""


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


# Shared option groups ------------------------------------------------------------------

def add_model_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", metavar="NAME", help="a named architecture (see 'archsearch presets')")
    src.add_argument("--config", metavar="FILE", help="a config.json written by 'archsearch export', or a genome JSON")


def add_data_options(p: argparse.ArgumentParser) -> None:
    from . import default_data_dir
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion-mnist, kmnist, cifar10, or a path to an .npz with x_train, y_train, "
                        "x_test, y_test (default: mnist)")
    p.add_argument("--data-dir", default=None,
                   help=f"where datasets live or are downloaded to (default: $ARCHSEARCH_DATA or data/; now "
                        f"{default_data_dir()})")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N images of the (shuffled, seeded) training split: quick runs, tests")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto = cuda if present)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto = bf16 on CUDA, fp32 on CPU (on AMX CPUs bf16 cost 0.1 points for 1.13x speed)")
    p.add_argument("--compile", action="store_true", help="torch.compile each model (CUDA only)")


def device_and_precision(args):
    """--device, --precision, --compile -> (torch.device, 'bf16'|'fp32'), checked before any data loads."""
    from .train import check_compile, default_precision, resolve_device
    device = resolve_device(args.device)
    if args.compile:
        check_compile(device)
    return device, default_precision(device) if args.precision == "auto" else args.precision


def load_source(args) -> tuple[str, object, object]:
    """(name, genome, train config) from --preset or --config."""
    from .genome import Genome, GenomeError, TrainConfig
    from .presets import get_preset
    if args.preset:
        p = get_preset(args.preset)
        return p.name, p.genome, p.train
    path = Path(args.config)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; give the config.json written by 'archsearch export'")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); give the config.json written by 'archsearch export'") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a JSON object with 'genome' (and optionally 'train')")
    gd = d.get("genome", d)
    try:
        genome = Genome.from_dict(gd)
        cfg = TrainConfig.from_dict(d.get("train", {}))
    except (GenomeError, TypeError) as e:
        raise UserError(f"{path}: {e}") from None
    return d.get("name", path.stem), genome, cfg


# Commands ---------------------------------------------------------------------------

def cmd_presets(args) -> int:
    from .model import count_flops, count_params
    from .presets import PRESETS
    rows = [{"name": p.name, "kind": p.kind, "params": count_params(p.genome),
             "flops": count_flops(p.genome), "reported": p.reported, "source": p.source,
             **({k: p.measured[k] for k in ("test_acc_mean", "test_acc_std", "test_accs")} if p.measured else {})}
            for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'preset':<12} {'params':>8} {'FLOPs':>11}  test accuracy (seeds: as published; found: measured)")
    for r in rows:
        print(f"{r['name']:<12} {r['params']:>8,} {r['flops']:>11,}  {r['reported']}")
    return 0


def cmd_show(args) -> int:
    from .model import count_flops, count_params, layer_table
    name, genome, cfg = load_source(args)
    rows = layer_table(genome)
    out = {"name": name, "params": count_params(genome), "flops": count_flops(genome), "layers": rows,
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
    return 0


def cmd_train(args) -> int:
    from dataclasses import replace

    from .data import load
    from .genome import GenomeError
    from .model import count_flops, count_params
    from .train import evaluate, fit
    name, genome, cfg = load_source(args)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None}
    cfg = replace(cfg, **overrides)
    device, precision = device_and_precision(args)
    data = load(args.dataset, args.data_dir, val_size=0, train_size=args.train_size, device=device)  # full training set: nothing to select on
    try:
        genome = genome.with_input(data.in_shape, data.num_classes)
        params, flops = count_params(genome), count_flops(genome)
    except GenomeError as e:
        raise UserError(f"{name} does not fit {args.dataset} ({data.in_shape}, {data.num_classes} classes): {e}") \
            from None
    log = lambda s: print(s, file=sys.stderr if args.json else sys.stdout, flush=True)
    log(f"{name}: {params:,} params, {flops:,} FLOPs/image; {args.dataset}, {len(data.train_x):,} training images, "
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g} {cfg.schedule}; "
        f"{device} {precision}")
    accs, secs = [], []
    for k in range(args.seeds):
        seed = args.seed + k
        model, hist = fit(genome, data, cfg, seed, precision, progress=True, compile=args.compile)
        accs.append(evaluate(model, data, data.test_x, data.test_y, precision))
        secs.append(statistics.mean(h["seconds"] for h in hist))
        log(f"seed {seed}: test {accs[-1]:.2f}% after {cfg.epochs} epochs ({secs[-1]:.1f} s/epoch, "
            f"final train loss {hist[-1]['train_loss']:.4f})")
    mean, std = statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
    out = {"name": name, "dataset": args.dataset, "params": params, "flops": flops, "test_acc_mean": mean,
           "test_acc_std": std, "test_accs": accs, "epoch_seconds": statistics.mean(secs), "epochs": cfg.epochs,
           "seeds": list(range(args.seed, args.seed + args.seeds)), "device": str(device), "precision": precision,
           "train": cfg.to_dict(), "genome": genome.to_dict()}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"test accuracy {mean:.2f} ± {std:.2f} % (final epoch, {len(accs)} seed{'s' * (len(accs) > 1)}); "
              f"{params:,} params; {out['epoch_seconds']:.1f} s/epoch")
    return 0


def positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {s}")
    return v


def add_study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", help="study name (default: derived from dataset and budget, e.g. mnist-b10000)")
    p.add_argument("--storage", help="any Optuna storage URL (default: sqlite:///studies/<study>.db)")


def _front_table(rows: list[dict]) -> str:
    lines = [f"{'trial':>5} {'params':>8} {'FLOPs':>11} {'val acc':>8} {'test acc':>8} {'epochs':>6}  architecture"]
    for r in rows:
        test = f"{r['test_acc']:.2f}" if r["test_acc"] is not None else "-"
        label = f"[{r['preset']}] " if r.get("preset") else ""
        lines.append(f"{r['trial']:>5} {r['params']:>8,} {r['flops'] or 0:>11,} {r['val_acc']:>8.2f} {test:>8} "
                     f"{r['epochs'] or 0:>6}  {label}{r['arch']}")
    return "\n".join(lines)


def cmd_run(args) -> int:
    import optuna

    from dataclasses import asdict

    from . import search, signals, studies, workers
    from .data import load
    from .export import artifact_dir
    if args.prune and args.epochs <= args.min_rung:
        raise UserError(f"--epochs {args.epochs} leaves no room for pruning at epoch {args.min_rung}; "
                        f"use --epochs > {args.min_rung} or --no-prune")
    device, precision = device_and_precision(args)
    name = args.study or search.default_study_name(args.dataset, args.budget)
    url = args.storage or studies.default_storage(name)
    settings = search.Settings(dataset=args.dataset, budget=args.budget, epochs=args.epochs, val_size=args.val_size,
                               train_size=args.train_size, seed=args.seed, prune=args.prune, eta=args.eta,
                               min_rung=args.min_rung, sampler=args.sampler, size_peers=args.size_peers,
                               rescale_every=args.rescale_every, prune_starts=args.prune_starts,
                               prune_rescaled=args.prune_rescaled, size_shift=args.size_shift,
                               start_recipe=args.start_recipe)
    data = load(args.dataset, args.data_dir, val_size=args.val_size, train_size=args.train_size, device=device)
    smallest = search.min_budget(data.in_shape, data.num_classes)
    if args.budget < smallest:
        raise UserError(f"--budget {args.budget:,} is below the smallest model the search can build "
                        f"({smallest:,} parameters for {args.dataset}); use --budget >= {smallest}")
    if args.jobs > args.trials:
        raise UserError(f"--jobs {args.jobs} is more than --trials {args.trials}: workers beyond the trials "
                        f"would have nothing to do; use --jobs {args.trials} or fewer")
    signals.stop_on_signals()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our trial lines say what its warnings would
    storage = studies.open_storage(url, writer=True)
    study, created = search.open_study(storage, name, settings, presets=args.presets, starts=args.starts,
                                       trials=args.trials)
    if created:
        study.set_user_attr("num_classes", data.num_classes)
    weights_dir = artifact_dir(url, name)
    done = search.finished_count(study)
    print(f"study {name!r} in {studies.mask_url(url)}: {'created' if created else 'resumed'}, {done} of "
          f"{args.trials} trials finished; budget {args.budget:,} params, {args.epochs} epochs, "
          f"{len(data.train_x):,} training / {len(data.val_x):,} validation images, {device} {precision}; "
          f"pruning at epochs {settings.rungs or 'off'}" + (f"; {args.jobs} workers" if args.jobs > 1 else ""),
          flush=True)
    from tqdm import tqdm
    bar = tqdm(total=args.trials, initial=min(done, args.trials), unit="trial", file=sys.stderr, disable=None,
               dynamic_ncols=True)

    def on_trial(t):  # a finished trial, or a line about a worker
        bar.write(t if isinstance(t, str) else search.trial_line(t), file=sys.stdout)
        bar.update(0 if isinstance(t, str) or not search.counts(t) else 1)

    shown = [studies.mask_url(a) if "://" in a else a for a in sys.argv[2:]]  # no password on the screen
    resume = f"archsearch run {' '.join(shown)}" if sys.argv[1:2] == ["run"] else "the same command"
    try:
        if args.jobs == 1:
            search.run(study, search.Objective(settings, data, precision, args.compile, weights_dir), args.trials,
                       args.timeout, on_trial)
        else:
            del data  # each worker loads its own copy
            spec = {"settings": asdict(settings), "data_dir": args.data_dir, "url": url, "study": name,
                    "precision": precision, "compile": args.compile, "weights_dir": weights_dir,
                    "trials": args.trials, "timeout": args.timeout, "grace_s": studies.GRACE_S,
                    "devices": workers.devices(str(device), args.jobs),
                    "threads": workers.threads_per_worker(args.jobs)}
            codes = workers.run_workers(spec, args.jobs, on_trial, study)
            if search.finished_count(study) < args.trials and (args.timeout is None or any(codes)):
                bar.close()
                print(f"workers stopped with {search.finished_count(study)} of {args.trials} trials finished "
                      f"(exit codes {codes}); resume with: {resume}", file=sys.stderr)
                return 1
    except KeyboardInterrupt as e:
        bar.close()
        term = isinstance(e, signals.Terminated)
        print(f"\n{'terminated' if term else 'interrupted'}: running trials are marked FAIL "
              f"and will be re-run; resume with: {resume}", file=sys.stderr)
        return 143 if term else 130
    bar.close()
    rows = studies.front(study)
    print(f"\nPareto front ({len(rows)} trials) of {search.finished_count(study)} finished:")
    print(_front_table(rows))
    flags = f"--study {name}" + (f" --storage {studies.mask_url(url)}" if args.storage else "")
    print(f"\nstudy: {name} in {studies.mask_url(url)} (trained weights in {weights_dir}/)")
    print(f"next: archsearch dashboard {flags}\n      archsearch pareto {flags}\n"
          f"      archsearch export {flags} [--max-params N] --out DIR")
    return 0


def open_existing_study(args):
    """(study, storage URL) for --study/--storage of a study that exists; never creates one."""
    from . import studies
    name, url = args.study, args.storage
    if not url:
        present = sorted(p.stem for p in Path("studies").glob("*.db"))
        if not name:
            if len(present) != 1:
                raise UserError(f"{len(present)} studies in studies/ ({', '.join(present) or 'none'}); "
                                f"name one with --study (and --storage URL if it lives elsewhere)")
            name = present[0]
        url = studies.default_storage(name)
        if not studies.sqlite_path(url).exists():
            raise UserError(f"no study {name!r} in studies/; studies there: {', '.join(present) or 'none'} "
                            f"(give --storage URL for a study elsewhere)")
    db = studies.sqlite_path(url)
    if db is not None and not db.is_file():
        raise UserError(f"no study database {db}; check the --storage path")
    storage = studies.open_storage(url)
    if not name:
        names = studies.study_names(storage)
        if len(names) != 1:
            raise UserError(f"{len(names)} studies in this storage; pick one with --study: {', '.join(names)}")
        name = names[0]
    return studies.load_study(storage, name), url


def cmd_pareto(args) -> int:
    from . import studies
    study, _ = open_existing_study(args)
    rows = studies.front(study)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("trial", "params", "flops", "val_acc", "test_acc", "epochs")}
                          for r in rows]))
    else:
        print(f"Pareto front of {study.study_name} ({len(rows)} trials):")
        print(_front_table(rows))
    return 0


def cmd_export(args) -> int:
    from . import export
    study, url = open_existing_study(args)
    if args.rescore and args.trial is not None:
        raise UserError("--rescore re-ranks the best trials under a size; use it with --max-params, not --trial")
    if args.pick and (args.trial is not None or args.rescore):
        raise UserError(f"--pick chooses among the trials under a size; drop it with "
                        f"{'--trial' if args.trial is not None else '--rescore'}")
    if args.out:
        export.check_out_dir(Path(args.out), args.force)  # before any training
    rule = args.pick or "se"  # None by default, so that --pick beside --trial or --rescore is caught above
    t = export.pick(study, args.max_params, args.trial, rule)
    if args.trial is None and not args.rescore:
        say_why(study, args.max_params, t)
    rescored = rescore_pick(args, study) if args.rescore else None
    t = rescored or t
    out = Path(args.out or f"exports/{study.study_name}-trial{t.number}")
    export.check_out_dir(out, args.force)  # before any retraining
    cfg = export.config(study, t)
    # How this trial was chosen, for whoever reads the config later: --trial, --rescore or the --pick rule.
    cfg["provenance"]["pick"] = "trial" if args.trial is not None else "rescore" if args.rescore else rule
    if rescored:
        from .rescore import runs, score
        cfg["metrics"]["val_acc_rescored"] = round(score(study, t.number, args.rescore_seeds), 4)
        cfg["metrics"]["rescore_runs"] = runs(study, t.number)[:args.rescore_seeds]
    folder = export.artifact_dir(url, study.study_name)
    weights = export.load_weights(t, folder)
    if weights is None or args.retrain:
        if not args.retrain:
            raise UserError(f"trial {t.number}'s trained weights are not in {folder}; add --retrain to train it "
                            f"again ({t.user_attrs.get('epochs_run')} epochs)")
        weights, test_acc, normalize = retrain(args, study, t)
        cfg["metrics"]["test_acc_retrained"] = test_acc
        cfg["normalize"] = cfg["normalize"] or normalize  # studies from before it was recorded
    files = export.write(out, cfg, weights, args.force)
    m = cfg["metrics"]
    test = f"{m['test_acc']:.2f}%" if m["test_acc"] is not None else "-"
    print(f"trial {t.number}: {m['params']:,} params, val {m['val_acc']:.2f}%, test {test}; "
          f"{t.user_attrs.get('arch')}")
    print(f"wrote {', '.join(str(f) for f in files)}")
    print(f"verify: archsearch train --config {out / 'config.json'} --seeds 3")
    return 0


def say_why(study, max_params, t) -> None:
    """One line on stderr when the default pick is not the best validation score."""
    from . import export
    best = export.pick(study, max_params, rule="best")
    if best.number != t.number:
        se = export.standard_error(best.values[0], export.val_images(study))
        print(f"trial {t.number} ({int(t.values[1]):,} params, val {t.values[0]:.2f}%) is the largest within one "
              f"standard error ({se:.2f} points) of the best validation score at or under "
              f"{export.size_cap(study, max_params):,} params, trial {best.number}'s {best.values[0]:.2f}% at "
              f"{int(best.values[1]):,} (--pick best exports that one)", file=sys.stderr, flush=True)


def search_split(args, study):
    """(data, precision): the study's dataset with the split its trials trained on."""
    from .data import load
    st = study.user_attrs["settings"]
    device, precision = device_and_precision(args)
    return load(st["dataset"], args.data_dir, val_size=st["val_size"], train_size=st["train_size"],
                device=device), precision


def rescore_pick(args, study):
    """--rescore K: the best of the top K trials at or under the size by the mean of
    --rescore-seeds fresh training runs on validation (archsearch/rescore.py says why)."""
    from . import rescore
    from .export import fits, size_cap
    trials = fits(study, size_cap(study, args.max_params))[:args.rescore]
    if len(trials) == 1:  # nothing to rank it against: export.pick's choice stands, not re-scored
        print(f"trial {trials[0].number} is the only COMPLETE trial at or under the size: nothing to re-score",
              file=sys.stderr, flush=True)
        return None
    todo = sum(max(0, args.rescore_seeds - len(rescore.runs(study, t.number))) for t in trials)
    data, precision = search_split(args, study)
    print(f"re-scoring the top {len(trials)} trials on {args.rescore_seeds} fresh seeds each: {todo} training "
          f"runs of {trials[0].user_attrs.get('epochs_run')} epochs on {len(data.train_x):,} images, "
          f"{data.device}...", file=sys.stderr, flush=True)
    log = lambda s: print(s, file=sys.stderr, flush=True)
    rescore.rescore(study, trials, args.rescore_seeds, data, precision, log)
    for t in trials:
        accs = ", ".join(f"{r['val_acc']:.2f}" for r in rescore.runs(study, t.number)[:args.rescore_seeds])
        print(f"  trial {t.number}: {int(t.values[1]):,} params, search val {t.values[0]:.2f}%, fresh val "
              f"{rescore.score(study, t.number, args.rescore_seeds):.3f}% ({accs})")
    return rescore.best(study, trials, args.rescore_seeds)


def retrain(args, study, t) -> tuple[dict, float, dict]:
    """Train the trial again exactly as the search did: same split, config and seed."""
    from . import search
    from .export import state_dict_cpu
    from .genome import Genome, TrainConfig
    from .train import evaluate, fit
    data, precision = search_split(args, study)
    device = data.device
    print(f"retraining trial {t.number} ({t.user_attrs.get('epochs_run')} epochs on {len(data.train_x):,} images, "
          f"{device})...", file=sys.stderr, flush=True)
    model, _ = fit(Genome.from_dict(t.user_attrs["genome"]), data, TrainConfig.from_dict(t.user_attrs["train"]),
                   search.trial_seed(search.Settings.of(study), t.number), precision)
    return (state_dict_cpu(model), round(evaluate(model, data, data.test_x, data.test_y, precision), 4),
            data.normalization())


def cmd_dashboard(args) -> int:
    from . import dashboard, studies
    from .export import artifact_dir
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
        dashboard.serve(study._storage, args.host, args.port, artifact_dir(url, study.study_name))
    except KeyboardInterrupt:
        pass
    print("dashboard stopped", file=sys.stderr)
    return 0


# Parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="archsearch", description="Search compact CNNs under a hard parameter budget.")
    ap.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("run", help="search architectures + hyperparameters under --budget; resumes a study",
                       description="Multi-objective search (max validation accuracy, min parameters) in an Optuna "
                                   "study. Every model is within the budget by construction. Rerunning the same "
                                   "command resumes the study.")
    p.add_argument("--budget", type=positive_int, required=True, help="hard limit on trainable parameters")
    p.add_argument("--trials", type=positive_int, default=100,
                   help="finished trials the study should hold in total; a resumed run continues to N (default 100)")
    p.add_argument("--timeout", type=positive_float, help="stop starting new trials after this many seconds")
    p.add_argument("--epochs", type=positive_int, default=15, help="epochs per trial (default 15)")
    p.add_argument("--val-size", type=positive_int, default=5000,
                   help="validation images carved from the training set, fixed seed (default 5000)")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "nsga2", "random"),
                   help="Optuna sampler, seeded by --seed (default tpe, multivariate)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of each trial's training")
    p.add_argument("--presets", action=argparse.BooleanOptionalAction, default=False,
                   help="also train the seed presets that fit the budget, as reference points (default off: at "
                        "15 epochs each costs 5-10 CPU minutes and teaches the sampler nothing, being outside "
                        "the sampled space)")
    p.add_argument("--starts", type=nonnegative_int, default=6, metavar="N",
                   help="a new study first trains N warm-start trials: one textbook layout (same-padded 3x3 "
                        "convs, no dropout) with a proven recipe, at sizes across the budget (default 6, as in "
                        "search v15: docs/search-record.md, change 19; 0: off)")
    p.add_argument("--start-recipe", default="onecycle32", choices=("onecycle32", "seed-7932", "space"),
                   help="what the warm starts and their rescaled copies train, outside the sampled space "
                        "(default onecycle32: seed-7932's OneCycle at batch 32 with zoom and translation; "
                        "seed-7932: that preset's own, as in search v27; space: the starts' in-space values, "
                        "as in studies made before this option; docs/search-record.md, change 35)")
    p.add_argument("--prune-starts", action="store_true",
                   help="let the pruner cut warm-start trials too (default: they run all epochs, as the same "
                        "start cut at epoch 1 in one search reached 99.40%% in another; studies made before "
                        "this option resume with it)")
    p.add_argument("--prune-rescaled", action="store_true",
                   help="let the pruner cut rescaled trials too (default: they run all epochs, as the warm starts "
                        "do; studies made before this option resume with it)")
    p.add_argument("--no-prune", dest="prune", action="store_false", help="train every trial for all epochs")
    p.add_argument("--eta", type=positive_int, default=3, help="pruning keeps the top 1/eta at each rung (default 3)")
    p.add_argument("--size-peers", type=nonnegative_int, default=12, metavar="N",
                   help="at each rung a trial continues if its accuracy is in the top 1/eta of the N trials "
                        "nearest its size (default 12; 0: ranked against every trial at the rung by Pareto "
                        "front, as in studies made before this option)")
    p.add_argument("--rescale-every", type=nonnegative_int, default=3, metavar="N",
                   help="from trial 20 on, every Nth trial reruns the layout and recipe of the front model "
                        "nearest its size at that size, to fill gaps in the front (default 3; 0: never, as in "
                        "studies made before search v19, docs/search-record.md change 21)")
    p.add_argument("--size-shift", action=argparse.BooleanOptionalAction, default=True,
                   help="start the sweep of model sizes at a point set by --seed, so searches with other seeds "
                        "train other sizes (default on; --no-size-shift: the same sizes for every seed, as in "
                        "studies made before this option)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="worker processes on this machine sharing the study (CPU cores are split between them; "
                        "several GPUs are used round robin)")
    p.add_argument("--min-rung", type=positive_int, default=1,
                   help="first pruning rung in epochs; rungs are min_rung * eta^k (default 1: 1, 3, 9 of 15)")
    add_study_options(p)
    add_data_options(p)
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
    pick.add_argument("--trial", type=nonnegative_int, metavar="N", help="this trial number")
    p.add_argument("--pick", choices=("se", "best"), help="se (default): the largest trial whose validation "
                   "accuracy is within one binomial standard error of the best (one validation run cannot tell "
                   "them apart, and the larger usually retrains better); best: the best validation accuracy")
    p.add_argument("--out", metavar="DIR", help="output folder (default exports/<study>-trial<N>)")
    p.add_argument("--force", action="store_true", help="overwrite config.json/model.py/weights.pt in --out")
    p.add_argument("--retrain", action="store_true",
                   help="train the trial again (same data split, config, seed) instead of using stored weights")
    p.add_argument("--rescore", type=positive_int, metavar="K",
                   help="train the K most accurate trials at or under the size again on fresh seeds and export "
                        "the best by their mean validation accuracy (one run's score is noisy; results are kept "
                        "in the study)")
    p.add_argument("--rescore-seeds", type=positive_int, default=2, metavar="R",
                   help="fresh training runs per candidate with --rescore (default 2)")
    add_data_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train a preset or exported config on the full training set; report test acc",
                       description="Train on the full training set (train + validation split) and report the "
                                   "final-epoch test accuracy, mean ± std over --seeds runs.")
    add_model_source(p)
    add_data_options(p)
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
    warnings.filterwarnings("ignore")  # library chatter means nothing to a user; errors still surface
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return args.func(args)
    except (UserError, ValueError) as e:  # GenomeError, DataError and SearchError are ValueErrors
        print(f"archsearch {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"archsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
