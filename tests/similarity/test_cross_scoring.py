"""Cross-scoring on the real SmolLM2 scorer: A's explanation judged on B's test examples.

Two dictionaries that are the same one with permuted latents: latent i of A is latent
perm[i] of B, so B's latent perm[i] has exactly A's latent i's test examples (real text
windows, cut with the real tokenizer). Cross-scoring A's explanation on its twin's examples
must then give exactly the score stage's detection score of the latent on its own examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from similarity_helpers import random_sparse, write_cache

from autointerp import similarity as sim
from autointerp.errors import AutointerpError
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun
from autointerp.scoring.detection import DetectionConfig

N_LAT, K, CTX, WINDOW = 48, 4, 16, 24
DETECTORS = {0: ("king", 'the word "king"'), 1: ("love", 'the word "love"')}
N_ACT = N_NON = 3


def examples_table(tokenizer, hookpoint: str, latent_of: dict[int, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test examples (docs/formats.md) of detectors of a word on real Shakespeare, and their explanations."""
    from autointerp.corpus import shakespeare_documents

    rng = np.random.default_rng(0)
    ids = tokenizer.encode(shakespeare_documents()[1][20000:80000], add_special_tokens=False)
    wins = [ids[i : i + WINDOW] for i in range(0, len(ids) - WINDOW, WINDOW)]
    toks = [[tokenizer.decode([t]) for t in w] for w in wins]
    rows, expl = [], []
    for d, (word, explanation) in DETECTORS.items():
        fires = [[t.strip().lower() == word and t.startswith(" ") for t in ts] for ts in toks]
        hit = [i for i, f in enumerate(fires) if any(f)]
        miss = [i for i, f in enumerate(fires) if not any(f)]
        chosen = [(i, "activating") for i in rng.choice(hit, N_ACT + 1, replace=False)] + [
            (i, "random") for i in rng.choice(miss, N_NON + 1, replace=False)
        ]
        for j, (i, kind) in enumerate(chosen):
            acts = [float(rng.uniform(1, 5)) if f else 0.0 for f in fires[i]]
            rows.append(
                {
                    "hookpoint": hookpoint,
                    "latent": latent_of[d],
                    "split": "test",
                    "kind": kind,
                    "quantile": j % 2 if kind == "activating" else -1,
                    "context": int(i),
                    "start": 0,
                    "token_ids": list(wins[i]),
                    "tokens": toks[i],
                    "activations": acts,
                    "max_activation": max(acts),
                    "marked": int(np.argmax(acts)) if kind == "activating" else -1,
                    "example_id": f"{hookpoint}/{latent_of[d]}/{i}:0",
                }
            )
        expl.append({"hookpoint": hookpoint, "latent": latent_of[d], "explanation": explanation})
    return pd.DataFrame(rows), pd.DataFrame(expl)


@pytest.fixture(scope="module")
def client(model_and_tokenizer):
    from autointerp.llm import LLMConfig, make_client

    return make_client(LLMConfig())


def test_cross_score_on_permuted_twin_equals_own_score(tmp_path, model_and_tokenizer, client):
    rng = np.random.default_rng(5)
    perm = rng.permutation(N_LAT)  # latent i of A is latent perm[i] of B
    val, idx = random_sparse(rng, 24 * CTX, N_LAT, K)
    a = write_cache(
        tmp_path / "a", "layers.1", val, idx, ctx_len=CTX, chunk_contexts=8, shard_size=48, num_latents=N_LAT
    )
    b = write_cache(
        tmp_path / "b", "layers.2", val, perm[idx], ctx_len=CTX, chunk_contexts=8, shard_size=48, num_latents=N_LAT
    )
    tok = model_and_tokenizer[1]
    ex_a, expl_a = examples_table(tok, "layers.1", {d: d for d in DETECTORS})
    ex_b, _ = examples_table(tok, "layers.2", {d: int(perm[d]) for d in DETECTORS})
    # B's latent perm[d] has A's latent d's examples; B's explanations are of other latents
    expl_b = pd.DataFrame({"hookpoint": "layers.2", "latent": perm[[10, 11]], "explanation": ["digits", "commas"]})

    # the score stage's own detection score of A's latents, on their own examples
    score_cfg = ScoreConfig(scorers=["detection"], n_activating=N_ACT, n_non_activating=N_NON, control=False)
    ScoreJob("layers.1", ex_a, expl_a, score_cfg, client=client, progress=False).run(tmp_path / "scores")
    own = ScoreRun(tmp_path / "scores").metrics().set_index("latent")

    scorer = sim.CrossScorer(
        sim.test_examples(ex_a, "layers.1"),
        sim.test_examples(ex_b, "layers.2"),
        client,
        DetectionConfig(),
        N_ACT,
        N_NON,
        seed=score_cfg.seed,
        progress=False,
    )
    cfg = sim.SimilarityConfig(
        decoder_baseline="never", cross_scoring=sim.CrossScoringConfig(enabled=True, min_pairs=2)
    )
    res = sim.compare(
        a,
        b,
        cfg=cfg,
        explanations_a=expl_a,
        explanations_b=expl_b,
        cross_score=scorer,
        embed_fn=lambda texts: np.eye(len(texts), 8, dtype=np.float32),
        progress=False,
    )
    m = res.matched.set_index("latent_a")
    assert (m.loc[list(DETECTORS), "latent_b"].to_numpy() == perm[list(DETECTORS)]).all()
    scored = m.dropna(subset=["cross_score"])
    assert sorted(scored.index) == sorted(DETECTORS)  # exactly the pairs with A's explanation and B's examples
    for d in DETECTORS:
        assert scored.loc[d, "cross_auroc"] == pytest.approx(own.loc[d, "auroc"], abs=1e-9)
        assert scored.loc[d, "cross_balanced_accuracy"] == pytest.approx(own.loc[d, "balanced_accuracy"], abs=1e-9)
        assert scored.loc[d, "cross_n"] == own.loc[d, "n"] == N_ACT + N_NON
    np.testing.assert_allclose(scored["cross_score"], scored["cross_auroc"])
    assert m["cross_score_ba"].isna().all()  # B's explained latents have no matched A examples
    s = res.summary.set_index(["matching", "measure"]).loc[("coactivation", "cross_score")]
    assert s["n"] == len(DETECTORS) and s["cross_eligible"] == len(DETECTORS) and s["chance"] == 0.5
    assert s["mean"] == pytest.approx(own.loc[list(DETECTORS), "auroc"].mean())
    assert pd.isna(s["note"])  # 2 eligible pairs >= min_pairs

    # the same explanation on a different latent's examples is scored on those examples
    wrong = scorer.score_one(expl_a.set_index("latent").loc[0, "explanation"], scorer.examples_b[int(perm[1])], 0)
    assert wrong["n"] == N_ACT + N_NON
    assert (wrong["auroc"], wrong["balanced_accuracy"]) != (own.loc[0, "auroc"], own.loc[0, "balanced_accuracy"])

    # too few eligible pairs: reported honestly, skipped, or refused, as configured
    few = sim.CrossScoringConfig(enabled=True, min_pairs=10, max_pairs=1)  # and capped at one pair
    cov = scorer(res.matched, few)
    assert cov.coverage["eligible"] == 2 and "only 2 of" in cov.note
    assert cov.table["cross_score"].notna().sum() == 1 and cov.coverage["scored"] == 1
    skip = scorer(res.matched, sim.CrossScoringConfig(enabled=True, min_pairs=10, on_few_pairs="skip"))
    assert skip.table["cross_score"].isna().all() and "skipped" in skip.note
    with pytest.raises(AutointerpError, match="sample.selection.mode: list"):
        scorer(res.matched, sim.CrossScoringConfig(enabled=True, min_pairs=10, on_few_pairs="error"))


def test_cross_scoring_config_is_checked():
    from autointerp.config import parse_config
    from autointerp.errors import ConfigError

    with pytest.raises(ConfigError, match="cross_scoring.on_few_pairs"):
        parse_config(sim.SimilarityConfig, {"cross_scoring": {"on_few_pairs": "maybe"}}, "parameters: similarity")
    with pytest.raises(ConfigError, match="cross_scoring.metric"):
        parse_config(sim.SimilarityConfig, {"cross_scoring": {"metric": "f1"}}, "parameters: similarity")
