"""An on-disk cache of embeddings, keyed by model and configuration, then by text.

Keying by text (rather than by dataset and sample) lets every sweep, rerun, larger sample and other task reuse what
was computed before. Each computed chunk is written as its own shard at once, so an interrupted run keeps its work.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from metaeol_integrations.locations import default_cache_folder


def text_key(text: str) -> str:
    """A stable key of one text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def identity_key(identity: Mapping[str, Any]) -> str:
    """A stable key of a model configuration (a JSON-serialisable mapping)."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:20]


def default_embedding_cache_dir() -> Path:
    """``<package cache>/embeddings`` (see :func:`metaeol_integrations.locations.default_cache_folder`)."""
    return default_cache_folder() / "embeddings"


class EmbeddingCache:
    """Arrays per text (``{"embedding": (d,), "layers": (L, d), ...}``) for one model configuration.

    Args:
        root: Folder holding one sub-folder per configuration; ``None`` uses :func:`default_embedding_cache_dir`.
        identity: What determines the vectors (model, templates, dtype, package version...).
    """

    def __init__(self, root: str | os.PathLike | None, identity: Mapping[str, Any]) -> None:
        self.folder = Path(root or default_embedding_cache_dir()) / identity_key(identity)
        self.folder.mkdir(parents=True, exist_ok=True)
        identity_file = self.folder / "identity.json"
        if not identity_file.exists():
            identity_file.write_text(json.dumps(identity, sort_keys=True, indent=2, default=str), encoding="utf-8")
        self._index: dict[str, tuple[str, int]] = {}
        self._shards: dict[str, dict[str, np.ndarray]] = {}
        for keys_file in sorted(self.folder.glob("shard-*.keys.json")):
            shard = keys_file.name.removesuffix(".keys.json")
            for row, key in enumerate(json.loads(keys_file.read_text(encoding="utf-8"))):
                self._index[key] = (shard, row)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._index

    def _shard(self, shard: str) -> dict[str, np.ndarray]:
        if shard not in self._shards:
            self._shards[shard] = {
                path.name.removeprefix(shard + ".").removesuffix(".npy"): np.load(path, mmap_mode="r")
                for path in self.folder.glob(f"{shard}.*.npy")
            }
        return self._shards[shard]

    def _write(self, keys: list[str], arrays: Mapping[str, np.ndarray]) -> None:
        shard = f"shard-{len(list(self.folder.glob('shard-*.keys.json'))):05d}-{os.getpid()}-{keys[0][:8]}"
        for name, array in arrays.items():
            np.save(self.folder / f"{shard}.{name}.npy", np.ascontiguousarray(array))
        # The keys file goes last and atomically: a shard without it is invisible, so a crash leaves no half shard.
        handle, staging = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(keys, out)
        os.replace(staging, self.folder / f"{shard}.keys.json")
        for row, key in enumerate(keys):
            self._index[key] = (shard, row)

    def get_or_compute(
        self,
        texts: Sequence[str],
        compute: Callable[[list[str]], Mapping[str, np.ndarray]],
        chunk_size: int = 256,
        description: str = "Embedding",
        show_progress: bool = True,
    ) -> dict[str, np.ndarray]:
        """Arrays for ``texts`` (row i belongs to ``texts[i]``), computing only the texts not cached yet."""
        missing = list(dict.fromkeys(text for text in texts if text_key(text) not in self._index))
        starts = range(0, len(missing), chunk_size)
        for start in tqdm(starts, desc=description, unit="chunk", disable=not show_progress or not missing):
            chunk = missing[start : start + chunk_size]
            self._write([text_key(text) for text in chunk], compute(chunk))
        rows: dict[str, list[np.ndarray]] = {}
        for text in texts:
            shard, row = self._index[text_key(text)]
            for name, array in self._shard(shard).items():
                rows.setdefault(name, []).append(np.asarray(array[row]))
        return {name: np.stack(values) for name, values in rows.items()}
