"""Local backend: a transformers causal LM on this machine (default SmolLM2-135M-Instruct).

The model is loaded with :func:`autointerp.models.load_model`, cached per process, so the
subject model and the explainer share one copy when they are the same. Chat prompts use
the tokenizer's chat template; generation is batched with left padding (prompts sorted by
length to waste little padding), greedy at temperature 0.
"""

from __future__ import annotations

import logging
import time

import torch

from ..models import ModelConfig, load_model
from .base import Generation, LLMClient, LLMConfig, Messages, OptionLogprobs, TokenLogprobs, option_spellings

log = logging.getLogger(__name__)


class LocalClient(LLMClient):
    backend = "local"

    def __init__(self, cfg: LLMConfig, cache=None):
        super().__init__(cfg, cache)
        self.model_cfg = ModelConfig(
            name_or_path=cfg.model, dtype=cfg.dtype, device=cfg.device, batch_size=cfg.batch_size
        )
        self._model = self._tokenizer = None

    def _load(self):
        if self._model is None:
            self._model, self._tokenizer = load_model(self.model_cfg)
        return self._model, self._tokenizer

    # ------------------------------------------------------------------ helpers

    def chat_ids(self, messages: Messages) -> list[int]:
        """Token ids of a chat prompt followed by the start of the assistant's turn; a final
        assistant message is a prefill that the answer continues."""
        _, tok = self._load()
        prefill = bool(messages) and messages[-1]["role"] == "assistant"
        if tok.chat_template:
            text = tok.apply_chat_template(
                list(messages), add_generation_prompt=not prefill, continue_final_message=prefill, tokenize=False
            )
            return tok.encode(text, add_special_tokens=False)
        # A base model without a chat template: plain text turns.
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"
        return tok.encode(text, add_special_tokens=True)

    def _pad(self, seqs: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        _, tok = self._load()
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if left:
                ids[i, width - len(s) :] = torch.tensor(s)
                mask[i, width - len(s) :] = 1
            else:
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
        dev = self.model_cfg.device
        return ids.to(dev), mask.to(dev)

    def _batches(self, lengths: list[int]):
        """Indices grouped into batches of similar length."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        bs = self.cfg.batch_size
        for b in range(0, len(order), bs):
            yield order[b : b + bs]

    @torch.inference_mode()
    def _logprobs_at(self, seqs: list[list[int]], positions: list[range]) -> list[torch.Tensor]:
        """Log-softmax over the vocabulary at ``positions[i]`` of ``seqs[i]`` (ascending), one
        ``[len(positions[i]), vocab]`` float tensor per sequence. The model's head runs at those
        positions only (``logits_to_keep``): at every position it costs about a fifth of
        SmolLM2's forward, and the float log-softmax of a whole batch took gigabytes."""
        model, _ = self._load()
        ids, mask = self._pad(seqs, left=False)
        keep = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
        for r, ps in enumerate(positions):
            keep[r, list(ps)] = True
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits
        rows = logits.reshape(-1, logits.shape[-1])  # the kept positions, row by row
        out, at = [], 0
        for ps in positions:
            out.append(torch.log_softmax(rows[at : at + len(ps)].float(), dim=-1))
            at += len(ps)
        return out

    # ------------------------------------------------------------------ primitives

    @torch.inference_mode()
    def _generate(self, messages: list[Messages], max_tokens: int, temperature: float, done=None) -> list[Generation]:
        model, tok = self._load()
        prompts = [self.chat_ids(m) for m in messages]
        out: list[Generation | None] = [None] * len(prompts)
        eos = tok.eos_token_id
        for batch in self._batches([len(p) for p in prompts]):
            t0 = time.perf_counter()
            ids, mask = self._pad([prompts[i] for i in batch], left=True)
            kw = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=eos,
                **kw,
            )
            dt = (time.perf_counter() - t0) / len(batch)
            new = gen[:, ids.shape[1] :].tolist()
            n_prompt = n_completion = 0
            for i, seq in zip(batch, new):
                if eos in seq:
                    seq = seq[: seq.index(eos) + 1]
                text = tok.decode(seq, skip_special_tokens=True).strip()
                out[i] = Generation(text, len(prompts[i]), len(seq), dt)
                n_prompt += len(prompts[i])
                n_completion += len(seq)
            self._count(
                requests=len(batch), prompt_tokens=n_prompt, completion_tokens=n_completion, seconds=dt * len(batch)
            )
            _report(done, batch, out)
        return out  # type: ignore[return-value]

    def option_token_ids(self, option: str) -> list[int]:
        """Distinct ids of the option's spellings that are one token each (see ``option_spellings``)."""
        _, tok = self._load()
        ids = [tok.encode(s, add_special_tokens=False) for s in option_spellings(option)]
        return list(dict.fromkeys(i[0] for i in ids if len(i) == 1))

    def _option_logprobs(self, messages: list[Messages], options: list[str], done=None) -> list[OptionLogprobs]:
        _, tok = self._load()
        prompts = [self.chat_ids(m) for m in messages]
        first = [self.option_token_ids(o) for o in options]  # summed over single-token spellings
        opt_ids = [tok.encode(o, add_special_tokens=False) for o in options]
        multi = [j for j, ids in enumerate(first) if not ids]  # no one-token spelling: the whole option
        out: list[OptionLogprobs | None] = [None] * len(prompts)
        for batch in self._batches([len(p) for p in prompts]):
            t0 = time.perf_counter()
            # One forward pass over the prompts gives every single-token option (and every first token).
            lasts = [range(len(prompts[i]) - 1, len(prompts[i])) for i in batch]
            lp = self._logprobs_at([prompts[i] for i in batch], lasts)
            res = {}
            for r, i in enumerate(batch):
                last = lp[r][0]
                res[i] = {o: float(torch.logsumexp(last[ids], 0)) if ids else 0.0 for o, ids in zip(options, first)}
            if multi:  # options of several tokens: score the full option text
                seqs, where = [], []
                for i in batch:
                    for j in multi:
                        seqs.append(prompts[i] + opt_ids[j])
                        where.append((i, j))
                for b in range(0, len(seqs), self.cfg.batch_size):
                    part = where[b : b + self.cfg.batch_size]
                    spans = [range(len(prompts[i]) - 1, len(prompts[i]) + len(opt_ids[j]) - 1) for i, j in part]
                    lp2 = self._logprobs_at(seqs[b : b + self.cfg.batch_size], spans)
                    for r, (i, j) in enumerate(part):
                        k = len(opt_ids[j])
                        res[i][options[j]] = float(lp2[r][torch.arange(k), torch.tensor(opt_ids[j])].sum())
            dt = time.perf_counter() - t0
            n_prompt = sum(len(prompts[i]) for i in batch)
            for i in batch:
                out[i] = OptionLogprobs(res[i], prompt_tokens=len(prompts[i]))
            self._count(requests=len(batch), prompt_tokens=n_prompt, seconds=dt)
            _report(done, batch, out)
        return out  # type: ignore[return-value]

    def _continuation_logprobs(self, prefixes: list[str], texts: list[str], done=None) -> list[TokenLogprobs]:
        _, tok = self._load()
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        pre = [bos + tok.encode(p, add_special_tokens=False) for p in prefixes]
        cont = [tok.encode(t, add_special_tokens=False) for t in texts]
        out: list[TokenLogprobs | None] = [None] * len(pre)
        if not bos and any(not p for p in pre):
            raise ValueError("continuation_logprobs: an empty prefix needs a tokenizer with a BOS token.")
        for batch in self._batches([len(pre[i]) + len(cont[i]) for i in range(len(pre))]):
            t0 = time.perf_counter()
            spans = [range(len(pre[i]) - 1, len(pre[i]) + len(cont[i]) - 1) for i in batch]
            lp = self._logprobs_at([pre[i] + cont[i] for i in batch], spans)
            for r, i in enumerate(batch):
                k = len(cont[i])
                vals = lp[r][torch.arange(k), torch.tensor(cont[i], dtype=torch.long)].tolist() if k else []
                out[i] = TokenLogprobs(vals, [tok.decode([t]) for t in cont[i]], prompt_tokens=len(pre[i]) + k)
            self._count(
                requests=len(batch),
                prompt_tokens=sum(len(pre[i]) + len(cont[i]) for i in batch),
                seconds=time.perf_counter() - t0,
            )
            _report(done, batch, out)
        return out  # type: ignore[return-value]


def _report(done, batch: list[int], out: list) -> None:
    """Hand a finished batch to the response cache at once (see LLMClient._cached_call)."""
    if done is not None:
        for i in batch:
            done(i, out[i])
