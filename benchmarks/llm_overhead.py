"""The pipeline's own overhead in front of an LLM server that answers instantly (issue 16.4).

A loopback OpenAI-compatible server (tests/llm/loopback.py, in its own process) answers every
request at once with well-formed answers and log-probabilities. The real explain and score
jobs (``autointerp.explainers.ExplainJob``, ``autointerp.scoring.ScoreJob``, with the response
cache on as in the default configuration) explain and score synthetic latents at the paper's
counts: 40 training examples for the explainer, 50 activating test examples over 10 quantiles
and 50 non-activating ones, 32-token windows; detection and fuzzing in the mode of
conf/base/parameters_score.yml (``--mode`` to choose), several units scored at once as the score
stage does with a server (``score.concurrent_latents``, ``--concurrent-latents``). Printed:
latents/s and requests/s at the given concurrency, the time per phase, the CPU used by the
client and by the server process, and (``--profile``) the top entries of a profile over every
client thread. Target: at least 5 latents/s on 2 cores.

``--before REV`` (default: the commit before the client was reworked) also runs the LLM client
as it was at that git revision, interleaved with the current one in the same process and on
the same server, and prints the ratio of medians.

    python benchmarks/llm_overhead.py [--latents 40] [--concurrency 64] [--repeats 2] [--before REV|none] [--profile]
        [--mode batched|logprob|generation] [--concurrent-latents N]

Absolute figures depend on the machine and on what else runs on it; the ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import multiprocessing as mp
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "llm"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from loopback import LoopbackServer  # noqa: E402

HOOKPOINT = "layers.6"
BEFORE = "fd2fb25"  # the client before issue 16.4's rework (typed SDK calls, one commit per cached answer)


# ---------------------------------------------------------------------------- synthetic latents


def synthetic_examples(n_latents: int, seed: int = 0, width: int = 32) -> pd.DataFrame:
    """The sample stage's examples table (docs/formats.md) for ``n_latents`` latents: 40 train
    activating windows, 50 test activating windows over 10 quantiles, 50 test random windows."""
    rng = np.random.default_rng(seed)
    vocab = [
        " the",
        " of",
        " and",
        " to",
        " in",
        " a",
        " is",
        " that",
        " for",
        " it",
        " as",
        " was",
        " with",
        " be",
        " by",
        " on",
        " not",
        " he",
        " this",
        " are",
        " or",
        " his",
        " from",
        " at",
        " which",
        " but",
        " have",
        " an",
        " had",
        " they",
        " you",
        " were",
        " their",
        " one",
        " all",
        " we",
        " can",
        " her",
        ".",
        ",",
        " king",
        " lord",
        " love",
        " night",
        " sword",
        " crown",
        " heart",
        " death",
        " blood",
        " sweet",
        " fair",
        " noble",
        " speak",
        " swear",
        " prove",
        " plead",
        " I'll",
        " thou",
        " thee",
    ]
    rows, context = [], 0
    for latent in range(n_latents):
        plan = (
            [("train", "activating", q % 10) for q in range(40)]
            + [("test", "activating", q // 5) for q in range(50)]
            + [("test", "random", -1)] * 50
        )
        for split, kind, quantile in plan:
            ids = rng.integers(0, len(vocab), size=width)
            acts = np.zeros(width)
            marked = -1
            if kind == "activating":
                pos = rng.choice(width, size=int(rng.integers(1, 4)), replace=False)
                acts[pos] = (quantile + 1) * rng.uniform(0.5, 1.0, size=len(pos))
                marked = int(pos[np.argmax(acts[pos])])
            context += 1
            rows.append(
                {
                    "hookpoint": HOOKPOINT,
                    "latent": latent,
                    "split": split,
                    "kind": kind,
                    "quantile": quantile,
                    "context": context,
                    "start": 0,
                    "token_ids": ids.tolist(),
                    "tokens": [vocab[i] for i in ids],
                    "activations": acts.round(3).tolist(),
                    "max_activation": float(acts.max()),
                    "marked": marked,
                    "example_id": f"{HOOKPOINT}/{latent}/{context}:0",
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- the server process


def _serve(q, stop) -> None:
    srv = LoopbackServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv._ready.wait(10)
    q.put(srv.port)
    stop.wait()
    q.put((time.process_time(), srv.received))


class ServerProcess:
    def __enter__(self):
        ctx = mp.get_context("fork")
        self.q, self.stop = ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=_serve, args=(self.q, self.stop), daemon=True)
        self.proc.start()
        self.url = f"http://127.0.0.1:{self.q.get(timeout=30)}/v1"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.cpu, self.received = self.q.get(timeout=30)
        self.proc.join(10)


# ---------------------------------------------------------------------------- clients


def current_llm():
    import autointerp.llm as llm

    return llm


def before_llm(rev: str):
    """The ``autointerp.llm`` package as it was at git revision ``rev`` (its errors are this
    project's, so both raise the same classes)."""
    tmp = Path(tempfile.mkdtemp(prefix="llm_before_"))
    pkg = tmp / "autointerp_before"
    (pkg / "llm").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text(
        "from autointerp.errors import *  # noqa\nfrom autointerp.errors import AutointerpError, ConfigError  # noqa\n"
    )
    for name in ("__init__", "base", "cache", "openai_compat"):
        src = subprocess.run(
            ["git", "show", f"{rev}:src/autointerp/llm/{name}.py"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        (pkg / "llm" / f"{name}.py").write_text(src)
    sys.path.insert(0, str(tmp))
    return importlib.import_module("autointerp_before.llm")


# ---------------------------------------------------------------------------- one run


class ThreadProfiles:
    """cProfile in every thread started while active (the client's worker threads included)."""

    def __init__(self):
        self.profiles: list[cProfile.Profile] = []

    def _start(self, *_):
        sys.setprofile(None)
        p = cProfile.Profile()
        self.profiles.append(p)
        p.enable()

    def __enter__(self):
        threading.setprofile(self._start)
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()
        return self

    def __exit__(self, *exc):
        threading.setprofile(None)
        self.profiles[0].disable()

    WAITS = ("acquire", "method 'get' of '_queue", "method 'poll' of", "method 'recv", "method 'wait'", "sleep")
    # C calls that drop the GIL (or are entered while 64 threads want it): their own time is mostly
    # waiting for the GIL to come back, reported as one line.
    HANDOFFS = ("method 'send' of", "method 'settimeout' of", "posix.urandom", "method 'connect' of")

    def report(self, n: int = 25) -> str:
        """The top ``n`` functions by own time over all threads, waits (locks, queues, sockets) left out:
        summed over 64 threads they are wall time, not work."""
        st = pstats.Stats(self.profiles[0], stream=io.StringIO())
        for p in self.profiles[1:]:
            try:
                st.add(p)
            except (TypeError, ValueError):
                pass
        rows, handoff = [], 0.0
        for (file, line, func), (_, nc, tt, ct, _) in st.stats.items():
            name = f"{Path(file).name}:{line}({func})" if file != "~" else func
            if any(w in name for w in self.HANDOFFS):
                handoff += tt
            elif not any(w in name for w in self.WAITS):
                rows.append((tt, ct, nc, name))
        rows.sort(reverse=True)
        total = sum(r[0] for r in rows)
        out = [
            f"  socket calls and GIL hand-offs (send, settimeout, urandom, connect): {handoff:.2f} s summed over "
            f"threads; the rest, {total:.2f} s of own time:",
            f"  {'own s':>7s} {'share':>6s} {'cum s':>7s} {'calls':>8s}  function (profiled: slower than unprofiled)",
        ]
        for tt, ct, nc, name in rows[:n]:
            out.append(f"  {tt:7.3f} {tt / total:6.1%} {ct:7.3f} {nc:8d}  {name}")
        return "\n".join(out)


def run_once(llm, url: str, examples: pd.DataFrame, concurrency: int, mode: str, units: int | None = None) -> dict:
    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun
    from autointerp.scoring.detection import DetectionConfig
    from autointerp.scoring.fuzzing import FuzzingConfig

    n = int(examples["latent"].nunique())
    with tempfile.TemporaryDirectory() as d:
        cfg = llm.LLMConfig(
            backend="openai",
            model="fake-model",
            base_url=url,
            api_key_env=None,
            max_concurrency=concurrency,
            cache_dir=str(Path(d) / "llm_cache"),
        )
        client = llm.make_client(cfg)
        cpu0, t0 = time.process_time(), time.perf_counter()
        ExplainJob(
            HOOKPOINT,
            examples,
            cfg,
            ExplainConfig(explainers=["default"], batch_latents=concurrency, progress=False),
            client=client,
        ).run(Path(d) / "explain")
        explanations = read_explanations(Path(d) / "explain")
        t1 = time.perf_counter()
        score = ScoreConfig(
            scorers=["detection", "fuzzing"],
            control=False,
            n_activating=50,
            n_non_activating=50,
            detection=DetectionConfig(mode=mode),
            fuzzing=FuzzingConfig(mode=mode),
            concurrent_latents=units,
        )
        ScoreJob(HOOKPOINT, examples, explanations, score, client=client, progress=False).run(Path(d) / "score")
        t2 = time.perf_counter()
        cpu = time.process_time() - cpu0
        metrics = ScoreRun(Path(d) / "score").metrics()
        u = client.usage
        client.close()
    n_explained = int(explanations["explanation"].notna().sum())
    return {
        "latents": n,
        "explained": n_explained,
        "scored": int(metrics["latent"].nunique()),
        "requests": u.requests,
        "failed": u.failed_requests,
        "explain_s": t1 - t0,
        "score_s": t2 - t1,
        "wall": t2 - t0,
        "cpu": cpu,
        "latents_s": n / (t2 - t0),
        "requests_s": u.requests / (t2 - t0),
    }


def bare_client(llm, url: str, n_requests: int, concurrency: int) -> dict:
    """The same number of log-prob requests straight through the client (no pipeline): the floor
    that the client and the server set."""
    cfg = llm.LLMConfig(
        backend="openai", model="fake-model", base_url=url, api_key_env=None, max_concurrency=concurrency
    )
    client = llm.make_client(cfg)
    text = "A feature of a language model fires on some texts. " * 12
    msgs = [[{"role": "user", "content": f"{text} Text {i}: ... Answer Yes or No."}] for i in range(n_requests)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    client.option_logprobs(msgs, options=["Yes", "No"])
    wall = time.perf_counter() - t0
    client.close()
    return {"wall": wall, "cpu": time.process_time() - cpu0, "requests_s": n_requests / wall}


def show(label: str, r: dict) -> None:
    print(
        f"  {label:7s} {r['latents_s']:7.2f} latents/s {r['requests_s']:8.0f} requests/s | explain {r['explain_s']:5.2f} s,"
        f" score {r['score_s']:6.2f} s, wall {r['wall']:6.2f} s, client CPU {r['cpu']:6.2f} s | {r['requests']} "
        f"requests, {r['failed']} failed, {r['explained']}/{r['latents']} explained, {r['scored']} scored"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latents", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--before", default=BEFORE, help="git revision of the client to compare with, or 'none'")
    ap.add_argument("--profile", action="store_true", help="profile one more run of the current client")
    ap.add_argument(
        "--mode",
        default=None,
        help="detection and fuzzing mode (default: conf/base/parameters_score.yml's; e.g. logprob, batched)",
    )
    ap.add_argument(
        "--concurrent-latents",
        type=int,
        default=None,
        help="units scored at once (default: the score stage's, from --concurrency)",
    )
    a = ap.parse_args()
    if a.mode is None:
        import yaml

        a.mode = yaml.safe_load((ROOT / "conf" / "base" / "parameters_score.yml").read_text())["score"]["detection"][
            "mode"
        ]

    examples = synthetic_examples(a.latents)
    clients = {"current": current_llm()}
    if a.before != "none":
        try:
            clients["before"] = before_llm(a.before)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"(no 'before' client: cannot read revision {a.before} from git: {e})")
    units = a.concurrent_latents or "default"
    print(
        f"{a.latents} synthetic latents at the paper's counts (40 train, 50+50 test, 32-token windows); "
        f"explanation + detection + fuzzing ({a.mode} mode, units at once: {units}), concurrency {a.concurrency}, "
        f"response cache on; "
        f"{os.cpu_count()} CPUs; server in its own process"
    )
    results: dict[str, list[dict]] = {k: [] for k in clients}
    with ServerProcess() as server:
        run_once(clients["current"], server.url, synthetic_examples(2, seed=1), a.concurrency, a.mode)  # warm-up
        for rep in range(a.repeats):
            for label in list(clients) if rep % 2 == 0 else list(clients)[::-1]:
                r = run_once(clients[label], server.url, examples, a.concurrency, a.mode, a.concurrent_latents)
                results[label].append(r)
                show(label, r)
        n_req = results["current"][0]["requests"]
        bare = [bare_client(clients["current"], server.url, n_req, a.concurrency) for _ in range(a.repeats)]
        bare_wall = statistics.median(b["wall"] for b in bare)
        wall = statistics.median(x["wall"] for x in results["current"])
        print(
            f"  bare client, {n_req} log-prob requests, no pipeline: {bare_wall:.2f} s "
            f"({n_req / bare_wall:.0f} requests/s, client CPU {statistics.median(b['cpu'] for b in bare):.2f} s); "
            f"the pipeline's own share of the current wall time: {max(0.0, 1 - bare_wall / wall):.0%}"
        )
        if a.profile:
            with ThreadProfiles() as prof:
                r = run_once(clients["current"], server.url, examples, a.concurrency, a.mode, a.concurrent_latents)
            show("profiled", r)
    med = {k: statistics.median(x["latents_s"] for x in v) for k, v in results.items()}
    print("median latents/s: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()) + " (target >= 5 on 2 cores)")
    if "before" in med:
        print(
            f"current / before (latents/s, medians of {a.repeats} interleaved runs): {med['current'] / med['before']:.2f}"
        )
    print(f"server process: {server.received} requests, {server.cpu:.1f} s CPU in all")
    if a.profile:
        print("\nWhere the client's time goes (profile over every thread, by own time):")
        print(prof.report())


if __name__ == "__main__":
    main()
