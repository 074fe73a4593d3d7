"""What optuna-dashboard shows beyond its own views: our figures and per-trial notes.

Multi-objective studies get no intermediate-value plot in the dashboard (Optuna
forbids `report` there), so the learning curves, the front against the budget and
the hypervolume are drawn here from the trials' user attrs and saved into the
study (`save_plotly_graph_object`, fixed ids: a refresh replaces, never piles up).
"""
from __future__ import annotations

import math
import socket
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState
from optuna_dashboard import save_note, save_plotly_graph_object
from plotly.colors import sample_colorscale

from .genome import Genome, TrainConfig
from .model import count_flops, count_params, layer_table
from .pruning import hypervolume
from .signals import raise_if_stopped

FIGURES = ("front", "curves", "hypervolume")  # graph object ids
ZOOM_POINTS = 5.0  # the front figure's accuracy axis spans the best this many points (a 20-100% axis flattens it)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if t.user_attrs.get("curve")]


def staircase(points: list[tuple[int, float]]) -> tuple[list, list]:
    """(params, acc) points -> x, y of the Pareto staircase, smallest model first."""
    xs, ys, best = [], [], -math.inf
    for p, acc in sorted(points):
        if acc > best:
            if xs:
                xs.append(p)
                ys.append(best)
            xs.append(p)
            ys.append(acc)
            best = acc
    return xs, ys


def hypervolume_history(study: optuna.Study, ref: tuple[float, int]) -> tuple[list[int], list[float]]:
    pts, xs, ys = [], [], []
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        pts.append((t.values[0], int(t.values[1])))
        xs.append(t.number)
        ys.append(hypervolume(pts, ref))
    return xs, ys


def figures(study: optuna.Study) -> dict[str, go.Figure]:
    settings = study.user_attrs.get("settings", {})
    budget = settings.get("budget")
    trials = _finished(study)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    label = lambda t: (f"#{t.number} {t.user_attrs.get('preset', '')}".strip() + f": {t.user_attrs.get('macs', 0):,} MACs, "
                       f"{t.user_attrs.get('int8_bytes', 0):,} B int8, {t.user_attrs.get('peak_ram', 0):,} B RAM")

    front = go.Figure()
    front.add_scatter(x=[t.user_attrs["params"] for t in pruned], y=[t.user_attrs["curve"][-1] for t in pruned],
                      mode="markers", name="pruned (last accuracy)", marker={"color": "#c9d6e8", "size": 7},
                      text=[f"{label(t)} pruned at epoch {t.user_attrs.get('pruned_at')}" for t in pruned])
    front.add_scatter(x=[int(t.values[1]) for t in done], y=[t.values[0] for t in done], mode="markers",
                      name="complete", marker={"color": "#1f5fa8", "size": 8}, text=[label(t) for t in done])
    xs, ys = staircase([(int(t.values[1]), t.values[0]) for t in done])
    front.add_scatter(x=xs, y=ys, mode="lines", name="Pareto front", line={"color": "#d62728", "width": 2})
    seeds = [t for t in done if "preset" in t.user_attrs]
    front.add_scatter(x=[int(t.values[1]) for t in seeds], y=[t.values[0] for t in seeds], mode="markers+text",
                      name="seed presets", text=[t.user_attrs["preset"] for t in seeds], textposition="top center",
                      marker={"symbol": "star", "size": 13, "color": "#ff9f1c", "line": {"width": 1}})
    if budget:
        front.add_vline(x=budget, line_dash="dash", line_color="gray", annotation_text=f"budget {budget:,}")
    front.update_layout(title="Validation accuracy vs parameters", xaxis_title="parameters",
                        yaxis_title="validation accuracy (%)")
    if done:  # zoom on the best 5 points of accuracy, where models differ (double-click shows every trial)
        accs = [t.values[0] for t in done]
        top = max(accs)
        low = max(min(accs), top - ZOOM_POINTS)
        pad = max(0.2, 0.1 * (top - low))
        front.update_yaxes(range=[low - pad, min(100.0, top) + pad])

    curves = go.Figure()
    sizes = [t.user_attrs["params"] for t in trials] or [1]
    lo, hi = math.log(min(sizes)), math.log(max(sizes))
    for t in sorted(trials, key=lambda t: t.user_attrs["params"]):
        frac = (math.log(t.user_attrs["params"]) - lo) / (hi - lo) if hi > lo else 0.5
        c = t.user_attrs["curve"]
        curves.add_scatter(x=list(range(1, len(c) + 1)), y=c, mode="lines+markers", showlegend=False,
                           line={"color": sample_colorscale("Viridis", frac)[0], "width": 1.5},
                           name=f"{label(t)} {t.user_attrs['params']:,} params")
    curves.add_scatter(x=[None], y=[None], mode="markers", showlegend=False, name="params",
                       marker={"colorscale": "Viridis", "cmin": min(sizes), "cmax": max(sizes), "color": [min(sizes)],
                               "showscale": True, "colorbar": {"title": "params"}})
    curves.update_layout(title="Validation accuracy per epoch (pruned trials end at their rung)",
                         xaxis_title="epoch", yaxis_title="validation accuracy (%)")

    chance = 100.0 / max(2, int(study.user_attrs.get("num_classes", 10)))
    hx, hy = hypervolume_history(study, (chance, budget or 1))
    hv = go.Figure(go.Scatter(x=hx, y=hy, mode="lines+markers", line_shape="hv", name="hypervolume"))
    hv.update_layout(title=f"Hypervolume of the front over trials (reference: {chance:g}% accuracy, "
                           f"{budget or 0:,} params)", xaxis_title="trial", yaxis_title="accuracy points x params")
    return {"front": front, "curves": curves, "hypervolume": hv}


def refresh(study: optuna.Study) -> bool:
    """Save (replace) our figures in the study. They are a view: a failure to draw or
    store them (a database busy past its timeout, say) must not stop a search, and
    the next refresh redraws everything. Returns whether it worked."""
    try:
        for key, fig in figures(study).items():
            save_plotly_graph_object(study, fig, graph_object_id=key)
        return True
    except Exception:
        return False


def trial_note(genome: Genome, cfg: TrainConfig, preset: str | None = None) -> str:
    """Markdown for the dashboard's trial page: the layer table and the training recipe."""
    head = f"**{preset}**: " if preset else ""
    lines = [f"{head}`{genome.describe()}`", "",
             f"**{count_params(genome):,} params**, {count_flops(genome):,} multiply-accumulates per image", "",
             "| layer | output | params | FLOPs |", "|---|---|---:|---:|"]
    lines += [f"| {r['layer']} | {'x'.join(map(str, r['shape']))} | {r['params']:,} | {r['flops']:,} |"
              for r in layer_table(genome)]
    lines += ["", "| training | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in cfg.to_dict().items()]
    return "\n".join(lines)


def save_trial_note(trial: optuna.Trial, genome: Genome, cfg: TrainConfig) -> None:
    save_note(trial, trial_note(genome, cfg, trial.user_attrs.get("preset")))


def check_port(host: str, port: int) -> None:
    """Raise OSError naming the port if it cannot be bound (in use, or a bad host)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, port))


class _Server(WSGIServer):
    timeout = 0.5  # seconds handle_request waits for a request before the loop checks for a signal


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    def address_string(self):  # no reverse DNS lookup per request
        return self.client_address[0]


def serve(storage, host: str, port: int, artifact_folder=None) -> None:
    """Serve optuna-dashboard until Ctrl-C or SIGTERM (KeyboardInterrupt propagates).

    Our own request loop, not optuna_dashboard.run_server's serve_forever: a signal whose
    KeyboardInterrupt Python swallowed (raised inside a finalizer, see signals.py) left
    that loop serving for good (CI: the dashboard ignored SIGINT). This loop checks
    every half second."""
    from optuna_dashboard import wsgi
    store = optuna.artifacts.FileSystemArtifactStore(str(artifact_folder)) if artifact_folder else None
    app = wsgi(storage, artifact_store=store)
    with make_server(host, port, app, _Server6 if ":" in host else _Server, _Handler) as server:
        while True:
            raise_if_stopped()
            server.handle_request()
