"""Hand-made stage outputs (docs/formats.md) for the report tests: two hookpoints, a latent whose
corpus text and explanation carry markup that must never run."""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import pytest

HOOKPOINTS = ["layers.2", "layers.2.mlp"]
LATENTS = {"layers.2": [3, 7, 11, 20], "layers.2.mlp": [0, 5, 9]}
EVIL_TOKEN = "<script>window.__pwned=1;document.title='pwned'</script>"
EVIL_EXPLANATION = 'HTML tags like <img src=x onerror="window.__pwned=2"> and <b>bold</b>'
WORDS = [" the", " king", " of", " Denmark", " is", " dead", ",", " long", " live", " the", " queen", "\n"]
SCORERS = ["detection", "fuzzing"]
N_QUANTILES = 4
TWO_EXPLAINERS = "layers.2"  # LLM and statistical explanations; layers.2.mlp's metrics are an old run's (no explainer)
EXPLAINERS = {"layers.2": ["default", "tokens"], "layers.2.mlp": [None]}


def _window(rng, latent, kind, split, quantile, peak, evil=False):
    n = 12
    tokens = [WORDS[(latent + i) % len(WORDS)] for i in range(n)]
    acts = np.zeros(n, dtype=np.float32)
    marked = -1
    if kind == "activating":
        marked = 5
        acts[marked] = peak
        acts[marked + 1] = peak * 0.4
        acts[marked - 1] = peak * 0.1
    if evil:
        tokens[2] = EVIL_TOKEN
        tokens[3] = "<b>not bold</b>"
    return {
        "split": split,
        "kind": kind,
        "quantile": quantile,
        "context": int(rng.integers(0, 100)),
        "start": int(rng.integers(0, 50)),
        "token_ids": list(range(n)),
        "tokens": tokens,
        "activations": acts.tolist(),
        "max_activation": float(acts.max()),
        "marked": marked,
    }


def stage_tables(hookpoint: str) -> dict[str, pd.DataFrame]:
    """latents, examples, explanations, scores (per example), score_metrics for one hookpoint."""
    rng = np.random.default_rng(len(hookpoint))
    lat, ex, expl, per_ex, met = [], [], [], [], []
    for i, latent in enumerate(LATENTS[hookpoint]):
        lat.append(
            {
                "hookpoint": hookpoint,
                "latent": latent,
                "firing_count": 10 + 7 * i,
                "frequency": (10 + 7 * i) / 8192,
                "max_activation": 3.0 + i,
                "mean_activation": 1.0,
                "status": "ok",
            }
        )
        evil = hookpoint == "layers.2" and latent == 7
        for j in range(6):
            q = j % N_QUANTILES
            ex.append(
                {
                    "hookpoint": hookpoint,
                    "latent": latent,
                    **_window(
                        rng,
                        latent,
                        "activating",
                        "train" if j < 3 else "test",
                        q,
                        (3.0 + i) * (q + 1) / N_QUANTILES,
                        evil=evil and j == 0,
                    ),
                }
            )
        for kind in ("random", "neighbour"):
            for _ in range(2):
                ex.append({"hookpoint": hookpoint, "latent": latent, **_window(rng, latent, kind, "test", -1, 0.0)})
        text = EVIL_EXPLANATION if evil else f"the word{WORDS[(latent + 5) % len(WORDS)]!s} in royal speech #{latent}"
        expl.append(
            {
                "hookpoint": hookpoint,
                "latent": latent,
                "explanation": text,
                "explainer": "default",
                "model": "smollm2",
                "prompt_tokens": 600,
                "completion_tokens": 20,
                "seconds": 1.0,
                "failure": None,
                "raw": text,
            }
        )
        if hookpoint == TWO_EXPLAINERS:
            stat = f'fires on "{WORDS[latent % len(WORDS)]}" (80% of activation mass)'
            expl.append({**expl[-1], "explanation": stat, "explainer": "tokens", "model": "statistics", "raw": stat})
        for s_i, scorer in enumerate(SCORERS):
            for explainer, control in product(EXPLAINERS[hookpoint], (False, True)):
                base = 0.55 + 0.08 * i + 0.05 * s_i if not control else 0.5 - 0.02 * i
                if explainer == "tokens" and not control:  # the baseline wins on fuzzing, loses on detection
                    base += 0.15 if scorer == "fuzzing" else -0.1
                row = {
                    "hookpoint": hookpoint,
                    "latent": latent,
                    "scorer": scorer,
                    "control": control,
                    **({"explainer": explainer} if explainer else {}),
                    "accuracy": base,
                    "balanced_accuracy": base,
                    "precision": base,
                    "recall": base,
                    "f1": base,
                    "auroc": min(base + 0.1, 1.0),
                    "n": 10,
                    "n_failed": 0,
                    "prompt_tokens": 100,
                    "completion_tokens": 0,
                    "seconds": 0.1,
                }
                for q in range(N_QUANTILES):
                    row[f"recall_q{q}"] = min(1.0, base * (q + 1) / N_QUANTILES + 0.2)
                met.append(row)
                if explainer == "tokens":
                    continue
                for k in range(4):
                    per_ex.append(
                        {
                            "hookpoint": hookpoint,
                            "latent": latent,
                            "scorer": scorer,
                            "control": control,
                            "example_id": k,
                            "kind": "activating" if k < 2 else "random",
                            "quantile": k if k < 2 else -1,
                            "label": int(k < 2),
                            "prediction": int(k < 2),
                            "score": 0.9 if k < 2 else 0.1,
                            "failure": None,
                        }
                    )
    tables = {
        "latents": pd.DataFrame(lat),
        "examples": pd.DataFrame(ex),
        "explanations": pd.DataFrame(expl),
        "scores": pd.DataFrame(per_ex),
        "score_metrics": pd.DataFrame(met),
    }
    if hookpoint == TWO_EXPLAINERS:  # the score stage's summary (its intervals are what the report shows)
        tables["score_summary"] = pd.DataFrame(
            [{"scorer": "fuzzing", "explainer": "tokens", "auroc": 0.876, "auroc.lo": 0.801, "auroc.hi": 0.951}]
        )
    return tables


@pytest.fixture(scope="session")
def fixture_tables() -> dict[str, dict[str, pd.DataFrame]]:
    return {h: stage_tables(h) for h in HOOKPOINTS}


PROJECT = __import__("pathlib").Path(__file__).resolve().parents[2]
MISSING = ("layers.2.mlp", "explanations")  # left out on purpose: the report must say so


def similarity_overview() -> pd.DataFrame:
    rows = []
    for a, b, v in (
        ("layers.2", "layers.2.mlp", 0.3),
        ("layers.2", "layers.2", 1.0),
        ("layers.2.mlp", "layers.2.mlp", 1.0),
    ):
        for measure in ("jaccard", "explanation_cosine"):
            rows.append(
                {
                    "hookpoint_a": a,
                    "hookpoint_b": b,
                    "matching": "coactivation",
                    "measure": measure,
                    "mean": v,
                    "ci_low": v - 0.1,
                    "ci_high": v + 0.1,
                    "fraction_above": v,
                }
            )
    return pd.DataFrame(rows)


def calibration_tables() -> dict[str, pd.DataFrame]:
    """The calibrate stage's verdicts, hits and summary: detection not informative, fuzzing informative."""
    verdicts = pd.DataFrame(
        [
            {
                "scorer": "detection",
                "metric": "auroc",
                "true": 0.52,
                "true_lo": 0.45,
                "true_hi": 0.6,
                "shuffled": 0.5,
                "shuffled_lo": 0.44,
                "shuffled_hi": 0.57,
                "delta": 0.02,
                "delta_lo": -0.05,
                "delta_hi": 0.09,
                "n_latents": 8,
                "verdict": "not informative with this model",
            },
            {
                "scorer": "fuzzing",
                "metric": "auroc",
                "true": 0.9,
                "true_lo": 0.85,
                "true_hi": 0.95,
                "shuffled": 0.52,
                "shuffled_lo": 0.47,
                "shuffled_hi": 0.58,
                "delta": 0.38,
                "delta_lo": 0.3,
                "delta_hi": 0.45,
                "n_latents": 8,
                "verdict": "informative",
            },
        ]
    )
    hits = pd.DataFrame(
        [
            {
                "latent": 0,
                "word": "crown",
                "explainer": "default",
                "explanation": 'the word "crown"',
                "failure": None,
                "hit": True,
            },
            {
                "latent": 1,
                "word": "sword",
                "explainer": "default",
                "explanation": "verbs ending in -ing",
                "failure": None,
                "hit": False,
            },
            {
                "latent": 0,
                "word": "crown",
                "explainer": "tokens",
                "explanation": 'fires on " crown"',
                "failure": None,
                "hit": True,
            },
            {
                "latent": 1,
                "word": "sword",
                "explainer": "tokens",
                "explanation": 'fires on " sword"',
                "failure": None,
                "hit": True,
            },
        ]
    )
    summary = pd.DataFrame(
        [
            {
                "scorer": "fuzzing",
                "metric": "auroc",
                "explanation": "default",
                "explainer": "default",
                "control": False,
                "mean": 0.7,
                "lo": 0.6,
                "hi": 0.8,
                "n_latents": 8,
            }
        ]
    )
    words = pd.DataFrame(
        {"latent": [0, 1, 2], "word": ["crown", "sword", "thane"], "status": ["ok", "ok", "not_separable"]}
    )
    return {"words": words, "verdicts": verdicts, "hits": hits, "summary": summary}


@pytest.fixture(scope="session")
def report_run(tmp_path_factory, fixture_tables):
    """The real report pipeline, run by Kedro's runner on the test env's catalog (real site and
    plot datasets, MLflow logging to a sqlite store in tmp), fed the hand-made stage tables."""
    import mlflow
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog
    from kedro.runner import SequentialRunner

    from autointerp.pipelines.report.pipeline import OptionalInputsHook, create_pipeline
    from autointerp.settings import CONFIG_LOADER_ARGS

    root = tmp_path_factory.mktemp("report_run")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")  # other tests may have set one globally
    # artifacts under tmp too (the default experiment would put them in ./mlruns of the checkout)
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("report-test", artifact_location=(root / "mlartifacts").as_uri())
    )
    # the project's catalog as `kedro run --env test --params data_root=<root>` builds it
    conf = OmegaConfigLoader(
        str(PROJECT / "conf"),
        env="test",
        runtime_params={"data_root": str(root)},
        **{k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"},
    )
    catalog = DataCatalog.from_config(conf["catalog"])
    catalog["params:report"] = conf["parameters"]["report"]
    pipe = create_pipeline(hookpoints=HOOKPOINTS, stage_exists=lambda stage: True)
    for name in pipe.inputs():
        if name.startswith("params:") or name.endswith(".latent_cache"):
            continue  # no cache in this run: the hook passes None, histograms come from examples
        if name == "similarity_overview":
            catalog[name] = similarity_overview()
            continue
        if name.startswith("calibration_"):
            catalog[name] = calibration_tables()[name.removeprefix("calibration_")]
            continue
        ns, role = name.split(".", 1)
        hookpoint = next(h for h in HOOKPOINTS if h.replace(".", "_") == ns)
        if (hookpoint, role) != MISSING and role in fixture_tables[hookpoint]:
            catalog[name] = fixture_tables[hookpoint][role]
    OptionalInputsHook().before_pipeline_run({}, pipe, catalog)
    try:
        SequentialRunner().run(pipe, catalog)
        run_id = mlflow.active_run().info.run_id if mlflow.active_run() else None
    finally:
        mlflow.end_run()
    yield {
        "root": root,
        "site": root / "08_reporting" / "site",
        "plots": root / "08_reporting" / "plots",
        "run_id": run_id,
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
    }
    mp.undo()
    mlflow.set_tracking_uri("")
