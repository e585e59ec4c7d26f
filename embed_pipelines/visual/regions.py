"""Region vectors of a page: a few unit vectors that stand for its parts, so that an HNSW index over them
finds the pages worth scoring exactly.

Regions rather than one mean per page: a page mixes content (a table, a figure, a paragraph), and a single
mean of all of it is close to none of the parts; measured in benchmarks/visual.py.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.vq import kmeans2

REGIONS_PER_PAGE = 8


def regions_of(tokens: np.ndarray) -> np.ndarray:
    """Up to REGIONS_PER_PAGE unit vectors: the page's tokens clustered by k-means (seeded, so the same page
    always gives the same regions), each cluster's normalized mean. k-means rather than colpali-engine's
    hierarchical token pooling: that is quadratic in tokens (11 pages/s at 768 tokens, measured), which
    would hold back a GPU; k-means does 268 pages/s."""
    tokens = tokens.astype(np.float32)
    if len(tokens) <= REGIONS_PER_PAGE:
        return tokens
    with warnings.catch_warnings():  # an empty cluster is expected on uniform pages: it is no region
        warnings.simplefilter("ignore", UserWarning)
        centroids, labels = kmeans2(tokens, REGIONS_PER_PAGE, iter=10, minit="++", seed=0)
    centroids = centroids[np.unique(labels)]
    return centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
