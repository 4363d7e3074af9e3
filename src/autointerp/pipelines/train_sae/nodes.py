"""Nodes of the ``train_sae`` pipeline."""

from __future__ import annotations

import numpy as np

from autointerp.config import parse_config
from autointerp.models import ModelConfig
from autointerp.pipelines.common import mlflow_metrics
from autointerp.training import TrainConfig, TrainJob, read_reports

METRICS = ("fvu", "dead_fraction", "mean_l0", "final_loss", "tokens_per_s")


def train_saes(tokens: np.ndarray, model: dict, train_sae: dict) -> TrainJob:
    """The lazy job that the ``trained_saes`` dataset runs (it skips SAEs that are up to date)."""
    return TrainJob(
        tokens=tokens,
        model=parse_config(ModelConfig, model, "parameters: model"),
        train=parse_config(TrainConfig, train_sae, "parameters: train_sae"),
    )


def _reports(saes_path: str, train_sae: dict) -> dict[str, dict]:
    wanted = parse_config(TrainConfig, train_sae, "parameters: train_sae").hookpoints
    reports = read_reports(saes_path)
    return {h: reports[h] for h in wanted if h in reports}


def training_metrics(saes_path: str, train_sae: dict) -> dict:
    """FVU on held-out tokens, dead fraction, mean L0 and final loss per SAE, as MLflow metrics."""
    flat = {
        f"{h}.{name}": r[name]
        for h, r in _reports(saes_path, train_sae).items()
        for name in METRICS
        if r.get(name) is not None
    }
    return mlflow_metrics("train_sae", flat)


def loss_curves(saes_path: str, train_sae: dict) -> dict:
    """One loss-curve figure per SAE (``<hookpoint>.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    for h, r in _reports(saes_path, train_sae).items():
        c = r["curve"]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(c["tokens"], c["fvu"], label="FVU (train batches)")
        ax.plot(c["tokens"], c["loss"], label="loss (FVU + AuxK)", alpha=0.7)
        ax.plot(c["tokens"], c["dead_fraction"], label="dead fraction", linestyle="--")
        ax.axhline(r["fvu"], color="k", linewidth=0.8, label=f"held-out FVU {r['fvu']:.3f}")
        ax.set_xlabel("training tokens")
        ax.set_ylim(0, max(1.0, max(c["loss"] or [1.0])) * 1.05)
        ax.set_title(f"SAE {h}: {r['num_latents']} latents, k={r['k']}")
        ax.legend()
        fig.tight_layout()
        figures[f"{h}.png"] = fig
    return figures
