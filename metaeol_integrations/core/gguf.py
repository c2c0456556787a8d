"""Dequantise a GGUF checkpoint once into a safetensors folder in the user's cache.

transformers can read GGUF directly but dequantises it on every load (about 20 s and 1.6 GB for SmolLM2-135M);
the safetensors copy reloads in about 2 s with identical weights. The folder is keyed by the GGUF file's content
hash, written to a temporary sibling and renamed into place, so concurrent processes never see half a copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from metaeol_integrations.locations import default_cache_folder

logger = logging.getLogger(__name__)

def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def dequantized_folder(gguf_path: str | os.PathLike, cache_folder: str | os.PathLike | None = None) -> Path:
    """Return a safetensors model folder (model + tokenizer) for ``gguf_path``, converting it on first use."""
    from transformers import AutoModel, AutoTokenizer

    gguf_path = Path(gguf_path).resolve()
    root = Path(cache_folder).expanduser() if cache_folder else default_cache_folder()
    target = root / "gguf" / f"{gguf_path.stem}-{_file_digest(gguf_path)}"
    if (target / "model.safetensors").is_file() or (target / "model.safetensors.index.json").is_file():
        return target

    logger.info("Dequantising %s into %s (once)", gguf_path, target)
    root.joinpath("gguf").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root / "gguf"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModel.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        # A GGUF-loaded model refuses save_pretrained while it still carries its quantizer.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process won the race when the target exists
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
