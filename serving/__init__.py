"""Serving: the published results online. The online stores (``online``), their materialisation
from the lake (``materialize``), the approximate nearest-neighbour index over item embeddings
(``ann``) and the HTTP service (``app``). See docs/serving.md."""
