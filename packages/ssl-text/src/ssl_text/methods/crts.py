"""Cluster-based random token substitution, C-RTS (Di Liello et al., 2022, "Effective Pre-Training Objectives
for Transformer-based Autoencoders"; seed 41).

Like RTS, 15% of the tokens are substituted and a binary head detects them, but a substitute is drawn from
the original token's cluster of similar tokens rather than from the whole vocabulary, so substitutions are
harder to spot -- a light statistical generator in place of ELECTRA's network. The clusters here come from
the pretraining corpus, computed once and deterministically at start-up (not refreshed from the model):
positive pointwise mutual information of tokens co-occurring within a window, reduced by a truncated SVD,
L2-normalised and grouped by k-means (scikit-learn, fixed seed); the paper's own clustering is not
reproduced. Head and loss as RTS (:class:`~ssl_text.methods.common.ReplacedTokenDetection`):
:math:`L = \\mathrm{BCE}(D(\\tilde x)_i, [\\tilde x_i \\ne x_i])` over all tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ssl_core.errors import ConfigError
from ssl_core.masking import mlm_mask
from ssl_text.data.text import TextInfo, TextSample
from ssl_text.methods.common import ReplacedTokenDetection, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.tokenization import MASK_ID, NUM_SPECIAL


@dataclass
class CRTSConfig:
    """C-RTS settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder.
        substitution_probability: share of tokens substituted (0.15).
        num_clusters: k-means clusters of the vocabulary.
        window: tokens on each side that count as co-occurring.
        svd_dim: dimensions of the PPMI vectors kept before clustering.
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("roberta"))
    substitution_probability: float = 0.15
    num_clusters: int = 64
    window: int = 2
    svd_dim: int = 64

    def __post_init__(self) -> None:
        if self.num_clusters < 2 or self.window < 1 or self.svd_dim < 2:
            raise ConfigError(
                f"C-RTS needs num_clusters >= 2, window >= 1, svd_dim >= 2; got {self.num_clusters}, "
                f"{self.window}, {self.svd_dim}"
            )


def cooccurrence_ppmi(corpus: Sequence[Sequence[int]], vocab_size: int, window: int) -> torch.Tensor:
    """Positive pointwise mutual information of token pairs within ``window`` positions of each other.

    :math:`\\mathrm{PPMI}(a, b) = \\max(0, \\log \\frac{C(a, b) \\, C}{C(a) \\, C(b)})` with :math:`C(a, b)`
    the symmetric count of ``b`` within ``window`` tokens of ``a``, :math:`C(a) = \\sum_b C(a, b)` and
    :math:`C = \\sum_a C(a)` (Church & Hanks, 1990; Levy et al., 2015). Special tokens are left out.

    Shapes:
        - output: ``(vocab_size, vocab_size)`` float32, symmetric
    """
    centre, context = [], []
    for ids in corpus:
        t = torch.as_tensor(ids, dtype=torch.long)
        t = t[t >= NUM_SPECIAL]
        for k in range(1, window + 1):
            centre += [t[:-k], t[k:]]
            context += [t[k:], t[:-k]]
    a, b = torch.cat(centre), torch.cat(context)
    counts = torch.bincount(a * vocab_size + b, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)
    counts = counts.float()
    row = counts.sum(1, keepdim=True)
    pmi = torch.log(counts * counts.sum() / (row * row.T).clamp_min(1e-12))
    return torch.where(counts > 0, pmi, 0.0).clamp_min(0.0)


def token_clusters(
    corpus: Sequence[Sequence[int]], vocab_size: int, num_clusters: int, window: int, svd_dim: int, seed: int = 0
) -> torch.Tensor:
    """Cluster of every token: k-means over the truncated-SVD rows of the PPMI matrix (deterministic).

    Tokens that never occur in the corpus and the special tokens get cluster ``-1`` (never substituted
    nor drawn). The result is cached for the same corpus and settings, so rebuilding the method (the
    probes' random-init baseline, ``selfsup eval``) does not cluster again.

    Shapes:
        - output: ``(vocab_size,)`` long
    """
    key = (vocab_size, num_clusters, window, svd_dim, seed, hash(tuple(map(tuple, corpus))))
    if key not in _CLUSTERS:
        _CLUSTERS.clear()  # one corpus at a time
        _CLUSTERS[key] = _cluster(corpus, vocab_size, num_clusters, window, svd_dim, seed)
    return _CLUSTERS[key].clone()


_CLUSTERS: dict[tuple, torch.Tensor] = {}


def _cluster(corpus, vocab_size: int, num_clusters: int, window: int, svd_dim: int, seed: int) -> torch.Tensor:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    ppmi = cooccurrence_ppmi(corpus, vocab_size, window)
    seen = (ppmi.sum(1) > 0).nonzero().squeeze(1)
    if len(seen) <= num_clusters:
        raise ConfigError(
            f"C-RTS: the corpus has {len(seen)} distinct co-occurring tokens, too few for "
            f"method.num_clusters={num_clusters}; lower it"
        )
    x = ppmi[seen][:, seen].numpy()
    dim = min(svd_dim, len(seen) - 1)
    # randomized SVD and one k-means++ start: seconds on 2 cores for a 4,096-token vocabulary
    vectors = TruncatedSVD(dim, algorithm="randomized", n_iter=3, random_state=seed).fit_transform(x)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)  # cosine geometry
    labels = KMeans(num_clusters, n_init=1, random_state=seed).fit_predict(vectors)
    clusters = torch.full((vocab_size,), -1, dtype=torch.long)
    clusters[seen] = torch.as_tensor(labels, dtype=torch.long)
    return clusters


class ClusterSubstitutionPretext:
    """``sample -> (substituted ids, labels)`` (picklable): ``mlm_mask`` selects the tokens, each selected
    token is replaced by another token of its cluster drawn uniformly (from the whole vocabulary when its
    cluster has no other member). ``labels`` hold the original id at substituted positions, else -100.
    Randomness from torch's global generator (seeded per sample by the trainer)."""

    def __init__(self, clusters: torch.Tensor, probability: float) -> None:
        self.clusters, self.p = clusters, probability
        order = torch.argsort(clusters, stable=True)
        self.members = order  # token ids grouped by cluster
        counts = torch.bincount(clusters[clusters >= 0], minlength=int(clusters.max()) + 1)
        self.start = torch.cumsum(counts, 0) - counts + int((clusters < 0).sum())  # first member of each cluster
        self.size = counts
        self.drawable = (clusters >= 0).nonzero().squeeze(1)

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int]]:
        ids = torch.tensor([sample.ids])
        # select only (no [MASK], no random token): the substitutes come from the clusters below
        _, labels = mlm_mask(ids, len(self.clusters), MASK_ID, self.p, special_token_ids=range(NUM_SPECIAL),
                             mask_replace_prob=0.0, random_replace_prob=0.0)  # fmt: skip
        ids, labels = ids[0], labels[0]
        out = ids.clone()
        for i in (labels != -100).nonzero().squeeze(1).tolist():
            c = int(self.clusters[ids[i]])
            if c < 0 or self.size[c] < 2:  # a token outside every cluster, or alone in its cluster
                new = int(self.drawable[torch.randint(len(self.drawable), ())])
                if new == int(ids[i]):
                    labels[i] = -100  # drawn unchanged: it stays an original token
                out[i] = new
                continue
            # uniform over the other members: draw among size - 1 slots, skipping the original's slot
            j = int(torch.randint(int(self.size[c]) - 1, ()))
            members = self.members[self.start[c] : self.start[c] + self.size[c]]
            own = int((members == ids[i]).nonzero()[0, 0])
            out[i] = members[j + (j >= own)]
        return out.tolist(), labels.tolist()


class CRTS(ReplacedTokenDetection):
    """RTS whose substitutes come from the original token's cluster.

    Shapes:
        - batch: ``input_ids`` (substituted), ``attention_mask``, ``labels`` (original id where substituted)
        - :meth:`embed`: ``-> (B, hidden_size)``
    """

    def __init__(self, config: CRTSConfig, info: TextInfo) -> None:
        super().__init__(config, info)
        if not info.corpus_ids:
            raise ConfigError("C-RTS clusters tokens of the pretraining corpus, and the data gave none")
        c = config
        self.clusters = token_clusters(info.corpus_ids, info.vocab_size, c.num_clusters, c.window, c.svd_dim)

    def pretext(self) -> ClusterSubstitutionPretext:
        return ClusterSubstitutionPretext(self.clusters, self.config.substitution_probability)
