"""The Python API: what the command line and the benchmarks call.

    study = archsearch.search("mnist", budget=10000, trials=40, timeout="30m")
    folder = archsearch.export(study, max_params=8000, out="best/")
    result = archsearch.train(folder / "config.json", seeds=3)

Mistakes a user can fix raise ArchsearchError (errors.py) with a one-line message.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .errors import ArchsearchError

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def seconds(duration: str | float | None) -> float | None:
    """90, "90s", "30m", "2h" -> seconds; None stays None."""
    if duration is None or isinstance(duration, (int, float)):
        return None if duration is None else float(duration)
    m = DURATION.match(duration.strip())
    if not m:
        raise ArchsearchError(f"cannot read the duration {duration!r}; write e.g. 90s, 30m or 2h")
    if float(m.group(1)) <= 0:
        raise ArchsearchError(f"must be positive, got {duration}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def read_search_config(path: str | Path) -> dict:
    """A TOML or JSON file of search settings (search.SEARCH_KNOBS), checked for unknown keys."""
    from .engine import SEARCH_KNOBS
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ArchsearchError(f"cannot read the search config {path} ({e.strerror}); check the path") from None
    try:
        if path.suffix == ".json":
            d = json.loads(text)
        else:
            import tomllib
            d = tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ArchsearchError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                              f"{str(e).splitlines()[0]}") from None
    unknown = sorted(set(d) - set(SEARCH_KNOBS)) if isinstance(d, dict) else ["(not a table)"]
    if unknown:
        raise ArchsearchError(f"{path}: unknown setting {', '.join(unknown)}; valid: {', '.join(SEARCH_KNOBS)}")
    return d


def search(dataset: str | None = None, budget: int | None = None, *, trials: int = 100,
           timeout: str | float | None = None, epochs: int | None = None, seed: int | None = None,
           train_size: int | None = None, image_size: int | None = None, channels: int | None = None,
           max_macs: int | None = None, max_ram: int | None = None, config: dict | str | Path | None = None, study: str | None = None, storage: str | None = None,
           data_dir: str | None = None, device: str = "auto", precision: str = "auto", compile: bool = False,
           jobs: int = 1, on_open: Callable | None = None, on_trial: Callable | None = None):
    """Run (or resume) a search until the study holds `trials` finished trials or `timeout`
    passes; returns the optuna.Study.

    A new study needs `budget` (and takes `dataset`, default mnist); a study that exists
    keeps its stored settings, and a value given here that contradicts them is refused.
    image_size, channels: resize the images to N x N, convert them to 1 or 3 channels.
    max_macs, max_ram: every model also has at most this many MACs per image and bytes of peak
    int8 activations (model.py), by construction as for the budget.
    config: search-method settings (a dict, or a TOML/JSON file; engine.SEARCH_KNOBS).
    on_open(info) hears what was opened before training starts; on_trial(t) each finished
    trial (a FrozenTrial, or a line about a worker)."""
    from . import engine as S
    from . import studies, workers
    from .budget import over_limits
    from .bundle import artifact_dir
    from .trainer import check_compile, default_precision, resolve_device
    knobs = read_search_config(config) if isinstance(config, (str, Path)) else dict(config or {})
    given = {"dataset": dataset, "budget": budget, "epochs": epochs, "seed": seed, "train_size": train_size,
             "image_size": image_size, "channels": channels, "max_macs": max_macs, "max_ram": max_ram, **knobs}
    if study is None and budget is None:
        raise ArchsearchError("give a budget for a new search, or the study to resume")
    name = study or S.default_study_name(dataset or "mnist", budget)
    url = storage or studies.default_storage(name)
    dev = resolve_device(device)
    if compile:
        check_compile(dev)
    precision = default_precision(dev) if precision == "auto" else precision
    limit = seconds(timeout)
    if jobs > trials:
        raise ArchsearchError(f"jobs {jobs} is more than trials {trials}: the extra workers would have nothing "
                              f"to do; use at most {trials}")
    db = studies.sqlite_path(url)
    stored = None
    if db is None or db.exists():  # read first (a refused resume must not even switch SQLite to WAL)
        reader = studies.open_storage(url)
        if name in studies.study_names(reader):
            stored = S.Settings.of(S.open_study(reader, name, given)[0])  # schema and contradictions checked
    if stored is None:  # a new study: every check before its storage exists, so a refused run leaves nothing
        if budget is None:
            raise ArchsearchError(f"there is no study {name!r} in {studies.mask_url(url)}; give a budget "
                                  f"(--budget) to create it")
        given["dataset"] = given["dataset"] or "mnist"
        stored = S.Settings(**{k: v for k, v in given.items() if v is not None})
        stored.check()
    data = stored.load(data_dir, dev)
    S.space.check_input(data.in_shape)  # images the space cannot build for: refused before a study exists
    smallest = S.min_budget(data.in_shape, data.num_classes)
    if stored.budget < smallest:
        raise ArchsearchError(f"budget {stored.budget:,} is below the smallest model the search can build "
                              f"({smallest:,} parameters for {stored.dataset}); use {smallest} or more")
    why = over_limits(S.scale(S.space.smallest_layout(data.in_shape, data.num_classes), 0.0), stored.max_macs,
                      stored.max_ram)
    if why:
        raise ArchsearchError(f"the smallest model the search can build for {stored.dataset} has {why}; "
                              f"raise the limit")
    the_study, created = S.open_study(studies.open_storage(url, writer=True), name, given, trials=trials)
    settings = S.Settings.of(the_study)
    if created:
        the_study.set_user_attr("num_classes", data.num_classes)
    spec = {"url": url, "study": name, "data_dir": data_dir, "precision": precision, "compile": compile,
            "weights_dir": artifact_dir(url, name), "trials": trials, "timeout": limit, "seed": settings.seed,
            "grace_s": studies.GRACE_S, "devices": workers.devices(str(dev), jobs),
            "threads": workers.threads_per_worker(jobs)}
    if on_open:
        on_open({"study": the_study, "name": name, "url": url, "created": created, "settings": settings,
                 "train_images": len(data.train_x), "val_images": len(data.val_x), "device": str(dev),
                 "precision": precision, "jobs": jobs, "done": S.finished_count(the_study)})
    if jobs == 1:
        workers.run_here(the_study, settings, data, spec, on_trial)
    else:
        del data  # each worker loads its own copy
        codes = workers.run_workers(spec, jobs, on_trial or (lambda t: None), the_study)
        if S.finished_count(the_study) < trials and (limit is None or any(codes)):
            raise WorkersStopped(f"workers stopped with {S.finished_count(the_study)} of {trials} trials "
                                 f"finished (exit codes {codes})")
    return the_study


class WorkersStopped(RuntimeError):
    """Every worker ended before the study had its trials (they crashed more than they may restart)."""


def open_study(study: str | None = None, storage: str | None = None):
    """(study, url) of an existing study: --study NAME in studies/, or any --storage URL."""
    from . import studies
    name, url = study, storage
    if not url:
        present = sorted(p.stem for p in Path("studies").glob("*.db"))
        if not name:
            if len(present) != 1:
                raise ArchsearchError(f"{len(present)} studies in studies/ ({', '.join(present) or 'none'}); "
                                      f"name one with --study (and --storage URL if it lives elsewhere)")
            name = present[0]
        url = studies.default_storage(name)
        if not studies.sqlite_path(url).exists():
            raise ArchsearchError(f"no study {name!r} in studies/; studies there: {', '.join(present) or 'none'} "
                                  f"(give --storage URL for a study elsewhere)")
    db = studies.sqlite_path(url)
    if db is not None and not db.is_file():
        raise ArchsearchError(f"no study database {db}; check the --storage path")
    st = studies.open_storage(url)
    if not name:
        names = studies.study_names(st)
        if len(names) != 1:
            raise ArchsearchError(f"{len(names)} studies in this storage; pick one with --study: {', '.join(names)}")
        name = names[0]
    loaded = studies.load_study(st, name)
    studies.check_schema(loaded)
    return loaded, url


def load_model(source) -> tuple[str, object, object]:
    """(name, genome, train config) from a preset name, a Genome, or a config.json path."""
    from .genome import Genome, GenomeError, TrainConfig
    from .presets import PRESETS, get_preset
    if isinstance(source, Genome):
        return "genome", source, TrainConfig()
    if isinstance(source, str) and source in PRESETS:
        p = get_preset(source)
        return p.name, p.genome, p.train
    path = Path(source)
    if not path.is_file():
        if isinstance(source, str) and not source.endswith(".json"):
            get_preset(source)  # raises, listing the presets
        raise ArchsearchError(f"config file {path} does not exist; give the config.json written by 'archsearch export'")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArchsearchError(f"{path} is not valid JSON ({e}); give the config.json written by 'archsearch export'") \
            from None
    if not isinstance(d, dict):
        raise ArchsearchError(f"{path}: expected a JSON object with 'genome' (and optionally 'train')")
    try:
        genome = Genome.from_dict(d.get("genome", d))
        cfg = TrainConfig.from_dict(d.get("train", {}))
    except (GenomeError, TypeError) as e:
        raise ArchsearchError(f"{path}: {e}") from None
    return d.get("name", path.stem), genome, cfg


def train(model, dataset: str = "mnist", *, epochs: int | None = None, batch_size: int | None = None,
          seeds: int = 1, seed: int = 0, train_size: int | None = None, image_size: int | None = None,
          channels: int | None = None, data_dir: str | None = None,
          device: str = "auto", precision: str = "auto", compile: bool = False,
          log: Callable[[str], None] | None = None, progress: bool = False) -> dict:
    """Train a preset name, Genome or config.json on the full training set `seeds` times;
    returns the final-epoch test accuracies with their mean and std (in %)."""
    from .data import load
    from .genome import GenomeError
    from .model import count_flops, count_params
    from .trainer import check_compile, default_precision, evaluate, fit, resolve_device
    name, genome, cfg = load_model(model)
    cfg = replace(cfg, **{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None})
    dev = resolve_device(device)
    if compile:
        check_compile(dev)
    precision = default_precision(dev) if precision == "auto" else precision
    data = load(dataset, data_dir, val_size=0, train_size=train_size, device=dev,  # nothing to select on
                image_size=image_size, channels=channels)
    try:
        genome = genome.with_input(data.in_shape, data.num_classes)
        params, flops = count_params(genome), count_flops(genome)
    except GenomeError as e:
        raise ArchsearchError(f"{name} does not fit {dataset} ({data.in_shape}, {data.num_classes} classes): {e}") \
            from None
    log = log or (lambda s: None)
    log(f"{name}: {params:,} params, {flops:,} FLOPs/image; {dataset}, {len(data.train_x):,} training images, "
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g} {cfg.schedule}; "
        f"{dev} {precision}")
    accs, secs = [], []
    for k in range(seeds):
        net, hist = fit(genome, data, cfg, seed + k, precision, progress=progress, compile=compile)
        accs.append(evaluate(net, data, data.test_x, data.test_y, precision))
        secs.append(statistics.mean(h["seconds"] for h in hist))
        log(f"seed {seed + k}: test {accs[-1]:.2f}% after {cfg.epochs} epochs ({secs[-1]:.1f} s/epoch, "
            f"final train loss {hist[-1]['train_loss']:.4f})")
    return {"name": name, "dataset": dataset, "params": params, "flops": flops,
            "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.stdev(accs) if seeds > 1 else 0.0,
            "test_accs": accs, "epoch_seconds": statistics.mean(secs), "epochs": cfg.epochs,
            "seeds": list(range(seed, seed + seeds)), "device": str(dev), "precision": precision,
            "train": cfg.to_dict(), "genome": genome.to_dict()}


def export(study, out: str | Path | None = None, *, max_params: int | None = None, max_macs: int | None = None,
           max_ram: int | None = None, trial: int | None = None,
           pick: str = "se", force: bool = False, retrain: bool = False, onnx: bool = False, int8: bool = False,
           rescore: int | None = None,
           rescore_seeds: int = 2, data_dir: str | None = None, device: str = "auto", precision: str = "auto",
           log: Callable[[str], None] | None = None) -> Path:
    """Write config.json, model.py and weights.pt of one COMPLETE trial into `out` (default
    exports/<study>-trial<N>); returns the folder. The trial: `trial`, else the one `pick`
    chooses at or under `max_params` (default: the study's budget), `max_macs` and `max_ram`; rescore=K trains the K
    most accurate there again on fresh seeds and takes the best mean (rescore.py says why).
    onnx=True adds model.onnx (normalisation inside, checked with onnxruntime on 1,000 test
    images); int8=True also model.int8.onnx, with both test accuracies in config.json.
    A study is an optuna.Study or a study name in studies/."""
    from . import bundle as E
    from . import engine as S
    log = log or (lambda s: None)
    if isinstance(study, str):
        study, url = open_study(study)
    else:
        url = _url_of(study)
    if rescore and trial is not None:
        raise ArchsearchError("rescore re-ranks the best trials under a size; use it with max_params, not trial")
    if onnx or int8:
        from .deploy import require
        require()  # before any training
    if out is not None:
        E.check_out_dir(Path(out), force)  # before any training
    t = E.pick(study, max_params, trial, pick, max_macs=max_macs, max_ram=max_ram)
    if trial is None and not rescore:
        why = E.why_not_best(study, max_params, t, max_macs=max_macs, max_ram=max_ram)
        if why:
            log(why)
    rescored = _rescore(study, max_params, (max_macs, max_ram), rescore, rescore_seeds, data_dir, device,
                        precision, log) if rescore else None
    t = rescored or t
    out = Path(out or f"exports/{study.study_name}-trial{t.number}")
    E.check_out_dir(out, force)
    cfg = E.config(study, t)
    cfg["provenance"]["pick"] = "trial" if trial is not None else "rescore" if rescore else pick
    if rescored:
        from .rescore import runs, score
        cfg["metrics"]["val_acc_rescored"] = round(score(study, t.number, rescore_seeds), 4)
        cfg["metrics"]["rescore_runs"] = runs(study, t.number)[:rescore_seeds]
    folder = E.artifact_dir(url, study.study_name)
    weights = E.load_weights(t, folder)
    if weights is None or retrain:
        if not retrain:
            raise ArchsearchError(f"trial {t.number}'s trained weights are not in {folder}; retrain it "
                                  f"(--retrain, {t.user_attrs.get('epochs_run')} epochs)")
        from .genome import Genome, TrainConfig
        from .trainer import evaluate, fit
        data, prec = _search_split(study, data_dir, device, precision)
        log(f"retraining trial {t.number} ({t.user_attrs.get('epochs_run')} epochs on {len(data.train_x):,} "
            f"images, {data.device})...")
        model, _ = fit(Genome.from_dict(t.user_attrs["genome"]), data, TrainConfig.from_dict(t.user_attrs["train"]),
                       S.trial_seed(S.Settings.of(study), t.number), prec)
        weights = E.state_dict_cpu(model)
        cfg["metrics"]["test_acc_retrained"] = round(evaluate(model, data, data.test_x, data.test_y, prec), 4)
    extra = None
    if onnx or int8:
        data, _ = _search_split(study, data_dir, "cpu", "fp32")
        extra = lambda folder, cfg: _onnx_files(folder, cfg, weights, data, int8, log)
    E.write(out, cfg, weights, force, extra)
    return out


def _onnx_files(folder: Path, cfg: dict, weights: dict, data, int8: bool, log) -> None:
    """model.onnx (and model.int8.onnx) into `folder`, with their checks and accuracies in cfg."""
    from . import deploy
    from .genome import Genome
    from .model import build_model
    genome = Genome.from_dict(cfg["genome"])
    net = build_model(genome)
    net.load_state_dict(weights)
    model = deploy.Normalized(net, cfg["normalize"]["mean"], cfg["normalize"]["std"]).eval()
    path = deploy.to_onnx(model, genome.in_shape, folder / "model.onnx")
    test_x, test_y = data.test_x.numpy(), data.test_y.numpy()
    diff = deploy.max_difference(path, model, test_x[:deploy.CHECK_IMAGES])
    metrics = {"onnx_max_abs_diff": diff, "onnx_test_acc": round(deploy.accuracy(path, test_x, test_y), 4)}
    log(f"model.onnx: onnxruntime against PyTorch on {min(len(test_x), deploy.CHECK_IMAGES):,} test images: "
        f"max abs difference {diff:.2e}; test {metrics['onnx_test_acc']:.2f}%")
    if int8:
        calibration = data.train_x[:deploy.CALIBRATION_IMAGES].numpy()
        q = deploy.quantize(path, folder / "model.int8.onnx", calibration)
        metrics["int8_test_acc"] = round(deploy.accuracy(q, test_x, test_y), 4)
        log(f"model.int8.onnx: test {metrics['int8_test_acc']:.2f}% (float {metrics['onnx_test_acc']:.2f}%), "
            f"{q.stat().st_size:,} bytes on disk")
    cfg["metrics"].update(metrics)


def _url_of(study) -> str:
    """The storage URL of an open study (where its weights folder lies)."""
    from .optuna_internals import storage_url
    return storage_url(study)


def _search_split(study, data_dir, device, precision):
    """(data, precision): the study's dataset with the split its trials trained on."""
    from .data import load
    from .engine import Settings
    from .trainer import default_precision, resolve_device
    s = Settings.of(study)
    dev = resolve_device(device)
    return (s.load(data_dir, dev),
            default_precision(dev) if precision == "auto" else precision)


def _rescore(study, max_params, limits, k, seeds, data_dir, device, precision, log):
    """The best of the top k trials at or under the size by the mean of `seeds` fresh training
    runs on validation; None when only one trial fits (nothing to rank it against)."""
    from . import rescore
    from .bundle import fits, size_cap
    trials = fits(study, size_cap(study, max_params), *limits)[:k]
    if len(trials) == 1:
        log(f"trial {trials[0].number} is the only COMPLETE trial at or under the size: nothing to re-score")
        return None
    todo = sum(max(0, seeds - len(rescore.runs(study, t.number))) for t in trials)
    data, prec = _search_split(study, data_dir, device, precision)
    log(f"re-scoring the top {len(trials)} trials on {seeds} fresh seeds each: {todo} training runs of "
        f"{trials[0].user_attrs.get('epochs_run')} epochs on {len(data.train_x):,} images, {data.device}...")
    rescore.rescore(study, trials, seeds, data, prec, log)
    for t in trials:
        accs = ", ".join(f"{r['val_acc']:.2f}" for r in rescore.runs(study, t.number)[:seeds])
        log(f"  trial {t.number}: {int(t.values[1]):,} params, search val {t.values[0]:.2f}%, fresh val "
            f"{rescore.score(study, t.number, seeds):.3f}% ({accs})")
    return rescore.best(study, trials, seeds)
