"""The Ray paths of embed, index and map: the same results as the local paths, on every core of a cluster.

Ray is imported only when one of these runs (``pip install 'embedspace[ray]'``).
"""

from __future__ import annotations

from embedspace.distributed.embed import embed_with_ray
from embedspace.distributed.index import RAY_KINDS, build_index_with_ray
from embedspace.distributed.session import ray_session, unwrap_ray_error

__all__ = ["RAY_KINDS", "build_index_with_ray", "embed_with_ray", "ray_session", "unwrap_ray_error"]
