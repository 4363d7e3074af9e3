"""How alike are two dictionaries (SAEs)? Match their latents, then measure the matched pairs.

Following the paper's SAE-similarity section (Paulo et al. 2024, arXiv 2410.13928), with the
choices it leaves open made explicit as parameters (see ``SimilarityConfig``):

1. **Matching.** The latents of dictionary A are matched one-to-one to those of B maximising
   the total *co-activation* of the pairs over the same cached tokens (both caches are built on
   the same ``corpus_tokens``), measured by the Jaccard index ``|A∩B| / (|A| + |B| - |A∩B|)`` of
   the sets of tokens where each latent fires: up to ``dense_max_latents`` by the Hungarian
   algorithm on a dense matrix (``scipy.optimize.linear_sum_assignment``), above it on the sparse
   graph of pairs that co-fire (:mod:`.sparse`). A pair that never co-fires is no match: dead
   latents, and with different widths the rest of the wider dictionary, are reported as unmatched.
2. **Semantic agreement** of each matched pair, from their explanations: the cosine of the
   explanations' sentence embeddings (all-MiniLM-L6-v2), on the matched pairs where both
   latents have one, and, optionally, cross-scoring (:class:`CrossScorer`: A's explanation
   scored by a scorer of the score stage, ``similarity.cross_scoring.scorer``, on B's test
   examples, and back), on the matched pairs where A's latent has an explanation and B's has
   examples; its chance level is the same explanations scored on random other latents'
   examples. Explanations and examples exist only for the sampled latents, so both report how
   many pairs they cover. Every explainer present is measured (:mod:`.explained`; the first LLM
   explainer's rows keep the plain measure names, the others' are ``<measure>.<explainer>``).
3. **Baselines**, so that a reader sees what explanations add: decoder-direction cosine
   matching (its own Hungarian assignment, only where both dictionaries write to the same
   space) and the co-activation Jaccard alone.

The SAE-level figure for each (matching, measure) is the distribution and mean of matched-pair
similarity, and the fraction of pairs whose similarity passes the measure's threshold, next
to the chance level (the same measure over a random one-to-one pairing) and the lift over it.

The dense co-activation matrix is accumulated token-chunk by token-chunk from the sparse cache
(binary CSR ``tokens x latents`` per chunk, ``A^T B`` summed), never densifying the whole cache;
the sparse method (:mod:`.sparse`) never holds a ``latents x latents`` array at all.

Modules: ``config`` (settings), ``coactivation`` (co-activation counts from the caches),
``matching`` (one-to-one matching, decoder baseline), ``measures`` (summaries, bootstrap),
``sparse`` (the same without dense matrices), ``compare`` (the whole comparison of one pair),
``matched_latents`` (top matched latents per hookpoint, for sampling), ``explained`` (the explanation measures of
every compared explainer), ``cross_scoring``, ``figures`` (per pair and
overview), ``score_comparison`` (latents vs neurons). This package imports nothing from Kedro.
"""

from .coactivation import Coactivation, check_same_corpus, chunk_csr, coactivation
from .compare import SimilarityResult, coactivation_matching, compare
from .config import (
    CROSS_METRICS,
    DECODER_BASELINE,
    FEW_PAIRS,
    MEASURES,
    CrossScoringConfig,
    SimilarityConfig,
    Thresholds,
    cross_scorers,
)
from .cross_scoring import CrossScorer, CrossScores, cross_columns, test_examples
from .explained import compared_explainers, explanation_measures, present_explainers
from .figures import heatmap_figures, overview, overview_figure
from .matched_latents import MATCHED_COLUMNS, hookpoint_matched, pair_top_matched, top_matched
from .matching import decoder_cosine, match, pair_kind, pair_values, shares_decoder_space, stream_kind
from .measures import bootstrap_ci, explanation_table, summary_metrics
from .score_comparison import compare_scores, dictionary_label, scores_figure
from .sparse import match_sparse, sparse_coactivation, token_csr

__all__ = [
    "MATCHED_COLUMNS",
    "coactivation_matching",
    "hookpoint_matched",
    "pair_top_matched",
    "top_matched",
    "CROSS_METRICS",
    "DECODER_BASELINE",
    "FEW_PAIRS",
    "MEASURES",
    "Coactivation",
    "CrossScorer",
    "compared_explainers",
    "cross_columns",
    "cross_scorers",
    "explanation_measures",
    "present_explainers",
    "CrossScores",
    "CrossScoringConfig",
    "SimilarityConfig",
    "SimilarityResult",
    "Thresholds",
    "bootstrap_ci",
    "check_same_corpus",
    "chunk_csr",
    "coactivation",
    "compare",
    "compare_scores",
    "decoder_cosine",
    "dictionary_label",
    "explanation_table",
    "heatmap_figures",
    "match",
    "match_sparse",
    "pair_values",
    "sparse_coactivation",
    "token_csr",
    "overview",
    "overview_figure",
    "pair_kind",
    "scores_figure",
    "shares_decoder_space",
    "stream_kind",
    "summary_metrics",
    "test_examples",
]
