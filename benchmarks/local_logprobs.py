"""The local backend's log-probability forward: the model's head at the needed positions only
(``LocalClient._logprobs_at``, ``logits_to_keep``) against the head and a float log-softmax at
every position (the backend before), side by side on the same batches.

    python benchmarks/local_logprobs.py [--requests 16] [--reps 3] [--batch-size 8]

Requests are those of batched detection (``score.detection.mode: batched``): the instructions,
an explanation and 10 texts of Shakespeare per request, each answered on its ``Fires:`` line,
read by ``continuation_logprobs``; and the last-token reads of ``option_logprobs``
(detection in ``logprob`` mode, simulation, intruder). Prints seconds per request for both
ways (median of ``--reps`` interleaved repetitions), their ratio, and the largest difference
of the log-probabilities read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from autointerp.corpus import shakespeare_documents  # noqa: E402
from autointerp.llm import LLMConfig, make_client  # noqa: E402
from autointerp.scoring.batched import batched_prompt  # noqa: E402


def full_head(client, seqs, spans):
    """The backend before: logits and a float log-softmax at every position, then the rows."""
    model, _ = client._load()
    ids, mask = client._pad(seqs, left=False)
    with torch.inference_mode():
        lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
    return [lp[r, list(span)] for r, span in enumerate(spans)]


def requests(client, n: int):
    _, tok = client._load()
    lines = [ln for d in shakespeare_documents() for ln in d.splitlines() if len(ln) > 40]
    texts = lines[1000 : 1000 + n * 10]
    seqs, spans, lasts = [], [], []
    for r in range(n):
        chunk = [" ".join(t.split()[:28]) for t in texts[r * 10 : r * 10 + 10]]
        pre, body = batched_prompt(
            "A latent of a language model fires on some texts.", "Explanation: words about kings.", chunk, [" Yes"] * 10
        )
        a, b = tok.encode(pre), tok.encode(body, add_special_tokens=False)
        seqs.append(a + b)
        spans.append(range(len(a) - 1, len(a) + len(b) - 1))
        lasts.append(range(len(a) + len(b) - 1, len(a) + len(b)))
    return seqs, spans, lasts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    client = make_client(LLMConfig(batch_size=args.batch_size))
    seqs, spans, lasts = requests(client, args.requests)
    print(f"{len(seqs)} requests, {sum(map(len, seqs)) / len(seqs):.0f} tokens each, batch {args.batch_size}")
    bs = args.batch_size
    for name, want in (("continuation (batched detection)", spans), ("last token (option log-probs)", lasts)):
        times = {"every position": [], "needed positions": []}
        diff = 0.0
        for _ in range(args.reps):  # interleaved: one of each per repetition
            for way, fn in (("every position", full_head), ("needed positions", type(client)._logprobs_at)):
                t0 = time.perf_counter()
                got = [fn(client, seqs[b : b + bs], want[b : b + bs]) for b in range(0, len(seqs), bs)]
                times[way].append((time.perf_counter() - t0) / len(seqs))
                if way == "every position":
                    ref = got
                else:
                    diff = max(diff, max(float((x - y).abs().max()) for g, h in zip(got, ref) for x, y in zip(g, h)))
        old, new = (statistics.median(times[w]) for w in ("every position", "needed positions"))
        print(
            f"{name}: every position {old:.3f} s/request, needed positions {new:.3f} s/request, "
            f"ratio {old / new:.2f}x (reps {', '.join(f'{a:.3f}/{b:.3f}' for a, b in zip(*times.values()))}); "
            f"largest log-prob difference {diff:.4f}"
        )


if __name__ == "__main__":
    main()
