"""The cache pipeline through real `kedro run`s: outputs, MLflow records and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from autointerp.dictionaries import random_topk_coder, save_sparsify

ROOT = Path(__file__).resolve().parents[2]


def write_sae(folder, d=576, n=256, k=8):
    save_sparsify(random_topk_coder(d, n, k, bias_scale=0.0), folder)


def conf_copy(tmp_path, edit):
    """A copy of conf/ whose test parameters ``edit`` changes."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    p = conf / "test" / "parameters.yml"
    params = yaml.safe_load(p.read_text())
    edit(params)
    p.write_text(yaml.safe_dump(params))
    return conf


@pytest.fixture(scope="module")
def run(tmp_path_factory, kedro):
    root = tmp_path_factory.mktemp("kedro_cache")
    write_sae(root / "06_models" / "saes" / "layers.2")
    out = kedro("--env", "test", "--pipelines", "cache", "--params", f"data_root={root}")
    assert out.returncode == 0, out.stderr[-3000:]
    return root, out


def test_cache_run_writes_every_hookpoint(run):
    from autointerp.latent_cache import LatentCache

    root, _ = run
    for ns, n in (("layers_2", 256), ("layers_2_mlp", 1536)):
        cache = LatentCache(root / "03_primary" / "latents" / ns)
        assert cache.num_latents == n and cache.n_tokens == 8192
        assert cache.stats()["firing_count"].sum() > 0


def test_one_forward_caches_every_hookpoint_of_the_run(run):
    # the shared node wrote both caches in one pass: one throughput, measured once, for both
    root, _ = run
    metas = [
        json.loads((root / "03_primary" / "latents" / ns / "meta.json").read_text())
        for ns in ("layers_2", "layers_2_mlp")
    ]
    assert metas[0]["tokens_per_s"] == metas[1]["tokens_per_s"]


def test_mlflow_records_params_and_cache_statistics(run, mlflow_runs):
    root, _ = run
    runs = mlflow_runs(root)
    assert len(runs) == 1
    data = runs[0].data
    assert data.params["model.name_or_path"] == "smollm2-135m-instruct"
    assert data.params["corpus.n_tokens"] == "8192"
    assert data.tags["autointerp.pipelines"] == "cache" and data.tags["autointerp.env"] == "test"
    assert data.tags["autointerp.hookpoints"] == "layers.2,layers.2.mlp"
    for key in ("tokens_per_s", "dead_fraction", "mean_l0"):
        assert f"cache.layers.2.{key}" in data.metrics
    assert 0 < data.metrics["cache.layers.2.mean_l0"] <= 8
    assert 0 < data.metrics["cache.layers.2.mlp.mean_l0"] <= 32


def test_namespace_runs_one_hookpoint_and_rerun_reuses(run, tmp_path, kedro):
    root, _ = run
    shutil.copytree(root, tmp_path / "r")
    target = tmp_path / "r" / "03_primary" / "latents"
    shutil.rmtree(target / "layers_2_mlp")
    before = {p: p.stat().st_mtime_ns for p in (target / "layers_2").rglob("*.safetensors")}
    out = kedro(
        "--env",
        "test",
        "--pipelines",
        "cache",
        "--namespaces",
        "layers_2_mlp",
        "--params",
        f"data_root={tmp_path / 'r'}",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (target / "layers_2_mlp" / "meta.json").exists()
    assert before == {p: p.stat().st_mtime_ns for p in (target / "layers_2").rglob("*.safetensors")}


def _expect_user_error(out, *fragments):
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    for f in fragments:
        assert f in errors[0], errors[0]


def test_unknown_config_key(tmp_path, kedro):
    out = kedro("--env", "test", "--pipelines", "cache", "--params", f"data_root={tmp_path},cache.chunk_size=3")
    _expect_user_error(out, "parameters: cache", "unknown key 'chunk_size'", "chunk_contexts")
    # refused before the first node (every section is parsed up front): no corpus was built
    assert not (tmp_path / "02_intermediate").exists()


def test_missing_model_path(tmp_path, kedro):
    out = kedro(
        "--env",
        "test",
        "--pipelines",
        "cache",
        "--params",
        f"data_root={tmp_path},model.name_or_path=/nowhere/model.gguf",
    )
    _expect_user_error(out, "/nowhere/model.gguf", "does not exist")


def test_empty_corpus(tmp_path, kedro):
    (tmp_path / "empty.txt").write_text("   \n")

    def edit(p):
        p["corpus"]["sources"] = [{"kind": "text_files", "path": str(tmp_path / "empty.txt")}]

    out = kedro(
        "--env",
        "test",
        "--pipelines",
        "cache",
        "--conf-source",
        str(conf_copy(tmp_path, edit)),
        "--params",
        f"data_root={tmp_path}",
    )
    _expect_user_error(out, "corpus is empty")


def test_unknown_hookpoint(tmp_path, kedro):
    # width mismatches and truncated files give their messages in test_dictionaries.py; here the
    # whole path from a node's error to one line on the command line
    def edit(p):
        p["hookpoints"] = {"layers.99": {"format": "neurons"}}

    out = kedro(
        "--env",
        "test",
        "--pipelines",
        "cache",
        "--conf-source",
        str(conf_copy(tmp_path, edit)),
        "--params",
        f"data_root={tmp_path},similarity.pairs=[]",  # (the test pair names layers.2: refused up front)
    )
    _expect_user_error(out, "unknown hookpoint 'layers.99'", "layers.29")


def test_dask_runner_on_a_local_cluster_equals_the_sequential_run(run, kedro, tmp_path):
    distributed = pytest.importorskip("distributed")
    import torch

    from autointerp.latent_cache import LatentCache

    root, _ = run
    write_sae(tmp_path / "06_models" / "saes" / "layers.2")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
        env={"AUTOINTERP_TORCH_THREADS": str(torch.get_num_threads())},
    ) as cluster:
        env = {"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address}
        out = kedro(
            "--env",
            "test",
            "--pipelines",
            "cache",
            "--runner",
            "autointerp.runners.DaskRunner",
            "--params",
            f"data_root={tmp_path}",
            env=env,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert len(cluster.workers) == 2
        # every node ran as a task on the cluster (task keys are the node names)
        prefixes = set(cluster.scheduler.task_prefixes)
    assert {"build_corpus", "cache_hookpoints", "layers_2.cache_latents", "layers_2_mlp.cache_metrics"} <= prefixes, (
        prefixes
    )
    # the same caches, bit for bit (the workers use as many torch threads as the sequential run:
    # a bfloat16 forward on another thread count may round a few activations differently)
    for ns in ("layers_2", "layers_2_mlp"):
        a = LatentCache(root / "03_primary" / "latents" / ns)
        b = LatentCache(tmp_path / "03_primary" / "latents" / ns)
        for sa, sb in zip(a.iter_shards(), b.iter_shards(), strict=True):
            np.testing.assert_array_equal(sa.tokens, sb.tokens)
            np.testing.assert_array_equal(sa.latents, sb.latents)
            np.testing.assert_array_equal(sa.values, sb.values)
