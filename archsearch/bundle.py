"""Take a result away: pick a COMPLETE trial, write config.json, model.py, weights.pt.

The weights come from the search itself: every COMPLETE trial stores its trained
state_dict as an Optuna artifact in a folder next to the study (a 10k-parameter
model is ~45 KB). A trial without them (say, a study run on another machine) is
retrained with `--retrain`: same data split, config and seed.

Everything is written into a fresh temporary folder first and moved into place
at the end, so a failure never leaves half an export behind.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from . import __version__
from .genome import Genome, TrainConfig
from .model import count_flops, count_params, ops
from .errors import ArchsearchError

if TYPE_CHECKING:  # torch is imported where weights are handled: choosing a trial needs none
    import torch

FILES = ("config.json", "model.py", "weights.pt")


class ExportError(ArchsearchError):
    """A trial that cannot be exported as asked; the message says what to do."""


# Where the weights live ---------------------------------------------------------------

def artifact_dir(storage_url: str, study_name: str) -> Path:
    """studies/x.db -> studies/x.artifacts/; other storages: studies/<study>.artifacts/."""
    if storage_url.startswith("sqlite:///"):
        return Path(storage_url[len("sqlite:///"):]).with_suffix(".artifacts")
    return Path("studies") / f"{study_name}.artifacts"


def artifact_store(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(folder))


def state_dict_cpu(model: torch.nn.Module) -> dict:
    """Plain contiguous fp32 CPU tensors, whatever device and memory format trained it."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_weights(trial: optuna.Trial, model: torch.nn.Module, folder: Path) -> str:
    """Store the model's state_dict as an artifact of `trial`; returns the artifact id."""
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trial{trial.number}-weights.pt"
        torch.save(state_dict_cpu(model), path)
        return optuna.artifacts.upload_artifact(artifact_store=artifact_store(folder), file_path=str(path),
                                                study_or_trial=trial, mimetype="application/octet-stream")


def load_weights(trial: optuna.trial.FrozenTrial, folder: Path) -> dict | None:
    """The trial's stored state_dict, or None if this machine does not hold it."""
    art = trial.user_attrs.get("weights_artifact")
    if not art or not (folder / art).is_file():
        return None
    import torch
    return torch.load(folder / art, map_location="cpu", weights_only=True)


# Which trial -----------------------------------------------------------------------------

def size_cap(study: optuna.Study, max_params: int | None) -> int:
    """--max-params, else the study's budget."""
    return max_params if max_params is not None else study.user_attrs["settings"]["budget"]


def val_images(study: optuna.Study) -> int:
    """The size of the study's validation split (images)."""
    return study.user_attrs["settings"]["val_size"]


def standard_error(acc: float, images: int) -> float:
    """One binomial standard error (points) of an accuracy (%) measured on `images` images:
    about 0.09 points at 99.6% on the default 5,000 validation images."""
    p = acc / 100
    return 100 * math.sqrt(p * (1 - p) / images)


# How pick() chooses among the trials that fit (`export --pick`): "se", the default, takes the
# largest whose validation accuracy is within one standard error of the best one's; "best" takes
# the best one.
# Why "se": the best of many single validation runs is the luckiest, not the best model (picks
# retrained 0.08 points below their validation score on average), and among trials that
# validate alike the larger one usually retrains better, as the front rises with size
# (docs/decisions.md).


def fits(study: optuna.Study, cap: int, max_macs: int | None = None,
         max_ram: int | None = None) -> list[optuna.trial.FrozenTrial]:
    """The COMPLETE trials with at most `cap` params (and max_macs MACs, max_ram bytes of peak RAM
    where given), most accurate first; of two equally accurate, the smaller first. `--rescore K`
    ranks the first K of these."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    within = lambda t, key, limit: limit is None or t.user_attrs[key] <= limit
    return sorted((t for t in done if t.values[1] <= cap and within(t, "macs", max_macs)
                   and within(t, "peak_ram", max_ram)), key=lambda t: (-t.values[0], t.values[1]))


def pick(study: optuna.Study, max_params: int | None = None, number: int | None = None,
         rule: str = "se", max_macs: int | None = None, max_ram: int | None = None) -> optuna.trial.FrozenTrial:
    """--trial N, else among the COMPLETE trials with at most max_params (default: the study's
    budget) the one `rule` ("se" or "best", above) chooses. Ties: "se" takes the more accurate
    of two of one size, "best" the smaller of two equally accurate."""
    trials = study.get_trials(deepcopy=False)
    if number is not None:
        t = next((t for t in trials if t.number == number), None)
        if t is None:
            raise ExportError(f"study {study.study_name!r} has no trial {number} (it has trials 0 to "
                              f"{len(trials) - 1}); see 'archsearch pareto'")
        if t.state != TrialState.COMPLETE:
            why = f" at epoch {t.user_attrs['pruned_at']}" if "pruned_at" in t.user_attrs else ""
            raise ExportError(f"trial {number} is {t.state.name}{why}, not COMPLETE; pick a COMPLETE one "
                              f"from 'archsearch pareto'")
        return t
    cap = size_cap(study, max_params)
    ranked = fits(study, cap, max_macs, max_ram)
    if not ranked:
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        if not done:
            raise ExportError(f"study {study.study_name!r} has no COMPLETE trial yet; let 'archsearch run' finish one")
        if max_macs is not None or max_ram is not None:
            least = lambda key: min(t.user_attrs[key] for t in done)
            raise ExportError(f"no COMPLETE trial fits at most {cap:,} params, {max_macs or '-'} MACs and "
                              f"{max_ram or '-'} bytes of RAM; the least are {least('macs'):,} MACs and "
                              f"{least('peak_ram'):,} bytes: raise the limits")
        smallest = min(int(t.values[1]) for t in done)
        raise ExportError(f"no COMPLETE trial has at most {cap:,} params; the smallest has {smallest:,}: "
                          f"use --max-params {smallest} or more")
    best = ranked[0]
    if rule == "best":
        return best
    floor = best.values[0] - standard_error(best.values[0], val_images(study))
    return max((t for t in ranked if t.values[0] >= floor), key=lambda t: (t.values[1], t.values[0]))


def why_not_best(study: optuna.Study, max_params: int | None, t: optuna.trial.FrozenTrial,
                 **limits) -> str | None:
    """One line when the default pick is not the best validation score, else None."""
    best = pick(study, max_params, rule="best", **limits)
    if best.number == t.number:
        return None
    se = standard_error(best.values[0], val_images(study))
    return (f"trial {t.number} ({int(t.values[1]):,} params, val {t.values[0]:.2f}%) is the largest within one "
            f"standard error ({se:.2f} points) of the best validation score at or under "
            f"{size_cap(study, max_params):,} params, trial {best.number}'s {best.values[0]:.2f}% at "
            f"{int(best.values[1]):,} (--pick best exports that one)")


# What is written ---------------------------------------------------------------------------

def config(study: optuna.Study, t: optuna.trial.FrozenTrial) -> dict:
    import torch
    a, settings = t.user_attrs, study.user_attrs["settings"]
    return {
        "name": f"{study.study_name}-trial{t.number}",
        "genome": a["genome"],
        "train": a["train"],
        "normalize": a.get("normalize"),
        "metrics": {"val_acc": t.values[0], "test_acc": a.get("test_acc"), "params": int(t.values[1]),
                    "flops": a.get("flops"), "epochs": a.get("epochs_run")},
        "provenance": {"study": study.study_name, "trial": t.number, "kind": a.get("kind"), "preset": a.get("preset"),
                       "dataset": settings.get("dataset"), "budget": settings.get("budget"),
                       "val_size": settings.get("val_size"), "train_size": settings.get("train_size"),
                       "archsearch_version": __version__, "torch_version": torch.__version__,
                       "search_archsearch_version": study.user_attrs.get("archsearch_version"),
                       "search_torch_version": study.user_attrs.get("torch_version")},
    }


def model_source(genome: Genome, name: str, normalize: dict | None) -> str:
    """A standalone module: imports only torch, class Net, state_dict keys as the trainer's."""
    rows = ops(genome)
    c, h, w = genome.in_shape
    body = []
    for op in rows:
        shape = "x".join(map(str, op.shape))
        note = f"  # -> {shape}" + (f", {op.params:,} params" if op.params else "")
        body.append(f"            {op.source()},{note}")
    norm = normalize or {"mean": [0.0] * c, "std": [1.0] * c}
    return "\n".join([
        f'"""{name}: {genome.describe()}',
        "",
        f"{count_params(genome):,} parameters, {count_flops(genome):,} multiply-accumulates per image.",
        f"Input: float [N, {c}, {h}, {w}], pixels scaled to [0, 1] then normalised per channel:",
        "(x - MEAN) / STD, with MEAN and STD of the training split below. Output: logits [N, "
        f"{genome.num_classes}].",
        f"Written by archsearch {__version__}; needs only torch. Load the weights with",
        "    net = Net(); net.load_state_dict(torch.load('weights.pt', weights_only=True)); net.eval()",
        '"""',
        "import torch",
        "from torch import nn",
        "",
        f"MEAN = {[float(m) for m in norm['mean']]}",
        f"STD = {[float(s) for s in norm['std']]}",
        "",
        "",
        "class Net(nn.Sequential):",
        f'    """{count_params(genome):,} parameters."""',
        "",
        "    def __init__(self):",
        "        super().__init__(",
        *body,
        "        )",
        "",
        "    @staticmethod",
        "    def normalize(x: torch.Tensor) -> torch.Tensor:",
        '        """uint8 or [0, 1] float images [N, C, H, W] -> the input Net was trained on."""',
        "        x = x.float() / 255 if x.dtype == torch.uint8 else x",
        "        mean = torch.tensor(MEAN, device=x.device).view(1, -1, 1, 1)",
        "        std = torch.tensor(STD, device=x.device).view(1, -1, 1, 1)",
        "        return (x - mean) / std",
        "",
        "",
        'if __name__ == "__main__":',
        "    print(sum(p.numel() for p in Net().parameters()), 'parameters')",
        "",
    ])


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse before any work: a file in the way, a folder with files (unless force), no write access."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        held = ", ".join(sorted(p.name for p in out.iterdir())[:4])
        raise ExportError(f"--out {out} already holds files ({held}); use --force to overwrite or choose another --out")
    parent = out if out.is_dir() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise ExportError(f"cannot write to {parent}; choose another --out")


def write(out: Path, cfg: dict, weights: dict, force: bool = False, extra=None) -> list[Path]:
    """Write the three files, and what extra(folder, cfg) writes beside them (ONNX files; it may add
    to cfg before config.json is written); all or nothing. Returns their paths."""
    check_out_dir(out, force)
    genome = Genome.from_dict(cfg["genome"])
    TrainConfig.from_dict(cfg["train"])  # refuse a config train --config could not read
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise ExportError(f"cannot write to {out.parent} ({e.strerror}); choose another --out") from None
    try:
        (tmp / "model.py").write_text(model_source(genome, cfg["name"], cfg.get("normalize")))
        import torch
        torch.save(weights, tmp / "weights.pt")
        if extra is not None:
            extra(tmp, cfg)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        names = sorted(p.name for p in tmp.iterdir())
        if not out.exists():
            tmp.rename(out)
        else:  # --force or an empty folder: replace our files, leave the rest alone
            for f in names:
                os.replace(tmp / f, out / f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / f for f in names]
