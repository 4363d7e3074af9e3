"""The similarity stage on the real model: caches built by CacheJob, and real Kedro runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from autointerp import similarity as sim
from autointerp.caching import CacheConfig, CacheJob
from autointerp.dictionaries import DictionaryConfig, SparseCoder, load_dictionary, save_sparsify
from autointerp.explainers import read_explanations
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig

ROOT = Path(__file__).resolve().parents[2]
D, N, K = 576, 256, 16


def random_sae(seed: int, perm: np.ndarray | None = None) -> SparseCoder:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, N, generator=g) / D**0.5
    b = torch.randn(N, generator=g) * 0.01
    W_dec = torch.randn(N, D, generator=g)
    if perm is not None:  # latent i becomes latent perm[i]
        inv = torch.from_numpy(np.argsort(perm))
        W, b, W_dec = W[:, inv], b[inv], W_dec[inv]
    return SparseCoder(W, b, W_dec, torch.zeros(D), k=K, hookpoint="layers.2")


def cache_of(tmp_path, name, coder, tokens) -> tuple[LatentCache, np.ndarray]:
    # float32: a bf16 encoder ties many pre-activations, and top-k breaks ties by latent index,
    # which a permutation changes
    folder = save_sparsify(coder, tmp_path / "saes" / name)
    job = CacheJob(
        "layers.2",
        tokens,
        ModelConfig(dtype="float32"),
        DictionaryConfig(format="sparsify", path=str(folder)),
        CacheConfig(chunk_contexts=4, shard_size=100),
        progress=False,
    )
    job.run(tmp_path / "cache" / name)
    W_dec = load_dictionary(DictionaryConfig(path=str(folder)), "layers.2").W_dec.numpy()
    return LatentCache(tmp_path / "cache" / name), W_dec


def test_permuted_and_random_sae_on_the_real_model(tmp_path, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    text = (
        "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
        "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles. "
    ) * 16
    ids = tokenizer(text)["input_ids"][: 12 * 32]
    tokens = np.asarray(ids, dtype=np.int32).reshape(12, 32)
    perm = np.random.default_rng(0).permutation(N)
    a, W_a = cache_of(tmp_path, "a", random_sae(1), tokens)
    b, W_b = cache_of(tmp_path, "b", random_sae(1, perm), tokens)
    r, W_r = cache_of(tmp_path, "r", random_sae(2), tokens)
    cfg = sim.SimilarityConfig(decoder_baseline="always")
    same = sim.compare(a, b, cfg=cfg, W_dec_a=W_a, W_dec_b=W_b, progress=False)
    live = same.matched[same.matched["count_a"] > 0]
    assert len(live) > N // 4
    np.testing.assert_allclose(live["jaccard"], 1.0, atol=1e-6)  # every live latent finds its twin
    # the permutation is recovered wherever the twin is unambiguous (repeated text can give two
    # latents exactly the same firing tokens; then either twin is a perfect match)
    jac = sim.coactivation(a, b, progress=False).jaccard()
    unique = (jac[live["latent_a"].to_numpy()] >= 1 - 1e-6).sum(1) == 1
    assert unique.mean() > 0.5
    assert (live["latent_b"].to_numpy() == perm[live["latent_a"].to_numpy()])[unique].all()
    s = same.summary.set_index(["matching", "measure"])
    assert s.loc[("decoder", "decoder_cosine"), "mean"] == pytest.approx(1.0, abs=1e-5)
    assert s.loc[("decoder", "decoder_cosine"), "frac_above"] == 1.0
    other = sim.compare(a, r, cfg=cfg, W_dec_a=W_a, W_dec_b=W_r, progress=False).summary.set_index(
        ["matching", "measure"]
    )
    assert other.loc[("coactivation", "jaccard"), "mean"] < 0.5 * s.loc[("coactivation", "jaccard"), "mean"]
    assert other.loc[("decoder", "decoder_cosine"), "frac_above"] == 0.0
    assert abs(other.loc[("coactivation", "decoder_cosine"), "mean"]) < 0.05  # chance of random directions: 0


def test_missing_cache_names_the_cache_pipeline(tmp_path, kedro):
    out = kedro(
        "--env", "test", "--pipelines", "similarity", "--params", f"data_root={tmp_path},similarity.explanations=false"
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "kedro run --pipelines cache" in out.stderr
    assert "Traceback" not in out.stderr


def test_kedro_run_writes_every_output(tmp_path, kedro):
    save_sparsify(random_sae(3), tmp_path / "06_models" / "saes" / "layers.2")
    out = kedro(
        "--env",
        "test",
        "--pipelines",
        "cache,similarity",
        "--params",
        f"data_root={tmp_path},corpus.n_tokens=1024,similarity.explanations=false",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    pair = tmp_path / "08_reporting" / "similarity" / "layers_2__layers_2_mlp"
    summary = pd.read_csv(pair / "summary.csv")
    row = summary.set_index(["matching", "measure"]).loc[("coactivation", "jaccard")]
    matched = pd.read_parquet(pair / "matched.parquet")
    # SAE (256) vs top-32 MLP neurons (1536): matched on the smaller, every latent that fires matched
    assert len(matched) == N - row["dead_a"] and row["unmatched"] == 1536 - len(matched)
    assert matched["latent_a"].is_unique and matched["latent_b"].is_unique and (matched["jaccard"] > 0).all()
    assert row["method"] == "dense" and np.isfinite(row["lift_diff"]) and row["lift_diff"] > 0
    assert {"explanation_a", "explanation_b"} <= set(matched.columns)
    jac = np.load(tmp_path / "07_model_output" / "similarity" / "layers_2__layers_2_mlp" / "jaccard.npy")
    assert jac.shape == (N, 1536)
    assert (pair / "plots" / "heatmap_jaccard.png").stat().st_size > 1000
    overview = pd.read_csv(tmp_path / "08_reporting" / "similarity" / "overview.csv")
    assert set(overview["kind"]) == {"mixed"}


def test_test_configuration_gives_explanation_measures(tmp_path, kedro, mlflow_runs):
    """Match before sampling on the test configuration: the matched latents are sampled and
    explained on both sides, so every explainer's explanation cosine and cross-score have
    n > 0, each beside a measured chance level; the summary names explainer and scorer, and
    the metrics reach MLflow."""

    save_sparsify(random_sae(3), tmp_path / "06_models" / "saes" / "layers.2")
    top = 4
    out = kedro(
        "--env",
        "test",
        "--pipelines",
        "cache,match,sample,explain,similarity",
        "--params",
        f"data_root={tmp_path},similarity.matched_latents={top},sample.selection.mode=matched,"
        f"sample.selection.n=2,explain.max_latents={top}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # two random extras per side, but the LLM's cap of `top` goes to the matched latents first
    for ns in ("layers_2", "layers_2_mlp"):
        want = set(pd.read_parquet(tmp_path / "04_feature" / "matched_latents" / f"{ns}.parquet")["latent"])
        status = pd.read_parquet(tmp_path / "04_feature" / "examples" / ns / "latents.parquet").set_index("latent")
        ok = set(status.index[status["status"] == "ok"])
        expl = read_explanations(tmp_path / "07_model_output" / "explanations" / ns)
        assert len(ok - want) > 0  # random extras were sampled
        assert set(expl.loc[expl["explainer"] == "default", "latent"]) == want & ok
    pair = tmp_path / "08_reporting" / "similarity" / "layers_2__layers_2_mlp"
    s = pd.read_csv(pair / "summary.csv").set_index("measure")
    matched = pd.read_parquet(pair / "matched.parquet")
    for sfx, explainer in (("", "default"), (".tokens", "tokens")):  # the LLM's (the paper's measure), the baseline
        cos, cross = s.loc[f"explanation_cosine{sfx}"], s.loc[f"cross_score{sfx}"]
        assert cos["explainer"] == cross["explainer"] == explainer
        assert 0 < cos["n"] <= top and np.isfinite(cos["chance"]) and np.isfinite(cos["lift_diff"])
        assert 0 < cross["n"] <= top and cross["chance_n"] == cross["n"] and cross["cross_scorer"] == "embedding"
        assert cross["chance"] != 0.5 and cross["chance"] == pytest.approx(matched[f"cross_chance_score{sfx}"].mean())
        scored = matched.dropna(subset=[f"cross_score{sfx}"])
        assert (scored[f"cross_chance_latent{sfx}"] != scored["latent_b"]).all()
    overview = pd.read_csv(tmp_path / "08_reporting" / "similarity" / "overview.csv")
    assert {"explanation_cosine.tokens", "cross_score.tokens"} <= set(overview["measure"])
    runs = mlflow_runs(tmp_path)
    metrics = runs[0].data.metrics
    prefix = "similarity.layers.2__layers.2.mlp.coactivation"
    assert metrics[f"{prefix}.cross_score.tokens.n"] > 0 and f"{prefix}.explanation_cosine.chance" in metrics
