"""Train TopK sparse autoencoders on several hookpoints at once, written in sparsify's layout.

One forward pass of the subject model per batch of contexts, stopped after the deepest
hookpoint, feeds every SAE being trained. The SAEs follow EleutherAI's sparsify and OpenAI's
TopK recipe: the encoder reads ``x - b_dec``, ReLU then TopK, decoder rows kept at unit norm
(the gradient component parallel to each row is removed before the step and rows are
renormalised after it), an AuxK loss that makes dead latents reconstruct the residual,
``b_dec`` initialised to the mean of the first batch and the decoder to the encoder's transpose.

With ``normalize`` (the default), inputs are divided by one scalar per hookpoint during training
(their RMS norm around the mean, so every hookpoint trains on the same scale and one learning
rate fits all; ``normalize: false`` trains on raw activations); the scale is
folded back into ``b_enc`` and ``b_dec`` when saving, so the saved SAE reads raw activations
and its latents are the trained ones multiplied by that scalar.

Output folder (``root``)::

    <hookpoint>/cfg.json            # sparsify config
    <hookpoint>/sae.safetensors     # encoder.weight, encoder.bias, W_dec, b_dec
    <hookpoint>/train_report.json   # written last: fingerprint, FVU, dead fraction, L0, loss curve

An SAE whose ``train_report.json`` carries the job's fingerprint, and whose files are whole and of
the configured shapes, is up to date and is not retrained (a truncated or mismatched
``sae.safetensors`` is retrained). Each SAE's initial weights depend only on the seed and its hookpoint, and every SAE
sees the same seeded token order, so training one hookpoint alone or with others gives the
same weights (on CPU, bit for bit).
"""

from .config import DEFAULT_HOOKPOINTS, PER_SAE_KEYS, TrainConfig
from .fit import check_job, evaluate, fit_saes, holdout_activations, job_autocast, train_saes
from .job import REPORT, TrainJob, hookpoint_seed, read_report, read_reports, save_trained, saved_sae_problem
from .sae import TopKSAE, coder_fvu, geometric_median

__all__ = [
    "DEFAULT_HOOKPOINTS",
    "PER_SAE_KEYS",
    "REPORT",
    "TopKSAE",
    "TrainConfig",
    "TrainJob",
    "check_job",
    "coder_fvu",
    "evaluate",
    "fit_saes",
    "geometric_median",
    "holdout_activations",
    "job_autocast",
    "hookpoint_seed",
    "read_report",
    "read_reports",
    "save_trained",
    "saved_sae_problem",
    "train_saes",
]
