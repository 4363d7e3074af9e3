"""``selection.mode: all`` over a whole (small) hookpoint: every latent gets a status, example
counts match the latents table, and peak memory does not grow with the number of latents."""

from __future__ import annotations

import tracemalloc

from autointerp.config import parse_config
from autointerp.models import ModelConfig
from autointerp.sampling import OK, TOO_FEW_FOR_TEST, SampleConfig, SampleJob, read_latents, read_sampled_examples

from .conftest import HOOKPOINT

CFG = {
    "window_len": 16,
    "n_quantiles": 4,
    "n_train": 6,
    "n_test": 6,
    "min_test": 3,
    "min_train": 3,
    "seed": 1,
    "selection": {"mode": "all", "min_activating": 4},
    "negatives": {
        "random": 3,
        "neighbour": 2,
        "embedding": 0,
        "pool_windows": 128,
        "train": {"random": 2, "neighbour": 1},
    },
}


def run(sample_cache, out, selection: dict):
    _, tokens, cache, dictionary = sample_cache
    cfg = parse_config(SampleConfig, dict(CFG, selection=dict(CFG["selection"], **selection)), "parameters: sample")
    job = SampleJob(HOOKPOINT, tokens, cache, ModelConfig(), dictionary, cfg, progress=False)
    tracemalloc.start()
    meta = job.run(out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return meta, peak


def test_every_latent_of_the_hookpoint_gets_a_status(sample_cache, tmp_path):
    _, _, cache, _ = sample_cache
    n = cache.num_latents
    meta, peak_all = run(sample_cache, tmp_path / "all", {})
    latents, ex = read_latents(tmp_path / "all"), read_sampled_examples(tmp_path / "all")
    assert sorted(latents["latent"]) == list(range(n)) and meta["n_latents"] == n
    status = latents.set_index("latent")["status"]
    assert status.str.len().gt(0).all() and not status.str.startswith("failed").any()
    fires = latents.set_index("latent")["firing_count"]
    assert (status[fires == 0] == "dead: never fires").all()
    # the edge: rare latents keep their own status, the run goes on
    assert status.str.startswith("too rare").any() and (status == OK).sum() == meta["n_ok"] > 0
    assert set(status) - {OK, TOO_FEW_FOR_TEST} <= {s for s in status if s.startswith(("dead", "too rare", "too few"))}
    # only ok latents have rows, exactly as many as the table counts
    ok = latents[latents["status"] == OK].set_index("latent")
    assert set(ex["latent"]) == set(ok.index)
    want = ok[["n_train", "n_test", "n_random", "n_neighbour", "n_embedding", "n_train_non_activating"]].sum(axis=1)
    assert ex.groupby("latent").size().sort_index().tolist() == want.sort_index().tolist()
    act = ex[ex["kind"] == "activating"].groupby(["latent", "split"]).size().unstack()
    assert (act["train"] == ok.loc[act.index, "n_train"]).all() and (act["test"] == ok.loc[act.index, "n_test"]).all()
    assert (ok["n_test"] >= CFG["min_test"]).all() and (ok["n_random"] <= CFG["negatives"]["random"]).all()
    assert (ok["n_random"] + ok["n_neighbour"] >= 1).all()  # min_non_activating
    assert ex["token_ids"].map(len).eq(CFG["window_len"]).all()

    # a quarter of the latents: the peak memory of sampling is about the same (streamed per shard)
    _, peak_quarter = run(sample_cache, tmp_path / "quarter", {"mode": "first", "n": n // 4, "eligible_only": False})
    assert len(read_latents(tmp_path / "quarter")) == n // 4
    assert peak_all < 1.5 * peak_quarter, (peak_all, peak_quarter)
