"""Fault injection for the Ray tests: an embedding actor whose process dies once, in the middle of a batch.

Pickled by value into the Ray workers (``ray.cloudpickle.register_pickle_by_value``), so they need not import the
tests package.
"""

from __future__ import annotations

import os
from pathlib import Path

from metaeol_integrations.distributed.ray_embed import _EmbedActor


class DieOnceActor(_EmbedActor):
    """Kills its own process on the first batch of the run (a marker file next to the output folder records it);
    Ray restarts the actor and retries the batch."""

    def __call__(self, batch):
        marker = Path(self.output_dir).parent / "actor-died-once"
        try:
            marker.open("x").close()  # only the first call anywhere gets to create it
        except FileExistsError:
            return super().__call__(batch)
        os._exit(1)
