"""Benchmark of the train_sae stage: training tokens/s and, for the default config (conf/base),
held-out FVU and dead-latent fraction per SAE against the targets (FVU <= 0.25, dead <= 10%).

    python benchmarks/train_sae.py                 # the default config (a few minutes on 2 cores)
    python benchmarks/train_sae.py --n-tokens 32768 --hookpoints layers.6 layers.6.mlp   # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from autointerp.config import parse_config  # noqa: E402
from autointerp.corpus import CorpusConfig, tokenize_corpus  # noqa: E402
from autointerp.models import ModelConfig, load_model  # noqa: E402
from autointerp.training import TrainConfig, TrainJob, fit_saes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-tokens", type=int, default=None, help="training tokens (default: the config's)")
    ap.add_argument("--hookpoints", nargs="*", default=None)
    ap.add_argument("--expansion-factor", type=int, default=None)
    args = ap.parse_args()
    params = {}
    for f in ("parameters.yml", "parameters_train_sae.yml"):
        params.update(yaml.safe_load((ROOT / "conf" / "base" / f).read_text()))
    model_cfg = parse_config(ModelConfig, params["model"], "parameters: model")
    cfg = parse_config(TrainConfig, params["train_sae"], "parameters: train_sae")
    over = {
        k: v
        for k, v in dict(
            n_tokens=args.n_tokens, hookpoints=args.hookpoints, expansion_factor=args.expansion_factor
        ).items()
        if v
    }
    cfg = dataclasses.replace(cfg, **over)
    _, tokenizer = load_model(model_cfg)
    tokens = tokenize_corpus(parse_config(CorpusConfig, params["corpus"], "parameters: corpus"), tokenizer)
    print(
        f"corpus {tokens.shape[0]} contexts x {tokens.shape[1]}; training {cfg.n_tokens:,} tokens on "
        f"{len(cfg.hookpoints)} hookpoints, expansion {cfg.expansion_factor}, k={cfg.k}, overrides {cfg.overrides}"
        + (" (overridden: not the default config)" if over else " (default config)")
    )
    t0 = time.perf_counter()
    _, reports = fit_saes(TrainJob(tokens, model_cfg, cfg))
    wall = time.perf_counter() - t0
    r0 = next(iter(reports.values()))
    print(
        f"training: {r0['train_tokens']:,} tokens in {r0['seconds']:.1f} s = {r0['tokens_per_s']:,.0f} tokens/s "
        f"through all {len(reports)} SAEs ({r0['tokens_per_s'] * len(reports):,.0f} SAE-tokens/s); wall {wall:.1f} s "
        f"with evaluation; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'hookpoint':14s} {'latents':>7s} {'k':>4s} {'FVU':>6s} {'dead':>6s} {'L0':>5s}  targets: FVU <= 0.25, dead <= 10%"
    )
    for h, r in reports.items():
        ok = "ok" if r["fvu"] <= 0.25 and r["dead_fraction"] <= 0.10 else "MISSED"
        print(
            f"{h:14s} {r['num_latents']:7d} {r['k']:4d} {r['fvu']:6.3f} {100 * r['dead_fraction']:5.1f}% {r['mean_l0']:5.1f}  {ok}"
        )


if __name__ == "__main__":
    main()
