"""The ``train_sae`` pipeline: corpus tokens, then every configured SAE in one training pass."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.pipelines.cache.pipeline import corpus_pipeline

from . import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return corpus_pipeline() + Pipeline(
        [
            Node(
                nodes.train_saes,
                ["corpus_tokens", "params:model", "params:train_sae"],
                "trained_saes",
                name="train_saes",
            ),
            Node(
                nodes.training_metrics,
                ["trained_saes", "params:train_sae"],
                "train_sae_metrics",
                name="train_sae_metrics",
            ),
            Node(
                nodes.loss_curves,
                ["trained_saes", "params:train_sae"],
                "train_sae_loss_curves",
                name="train_sae_loss_curves",
            ),
        ]
    )
