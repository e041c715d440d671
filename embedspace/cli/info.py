"""``embedspace info PATH``: verify any saved embedspace directory (set, index, map, VAE) and describe it."""

from __future__ import annotations

from pathlib import Path

from embedspace.cli._common import add_command, emit_json, printable, saved_format
from embedspace.embeddingset import EmbeddingSet, ModelIdentity
from embedspace.mapping import MAP_FORMAT, MAP_FORMAT_VERSION
from embedspace.search import load_index
from embedspace.store import read_manifest
from embedspace.vae import load as load_vae


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "info",
        help="check and describe a saved EmbeddingSet, index, map or VAE",
        description="Load PATH (an EmbeddingSet, a search index, a map or a VAE directory), verify its manifest "
                    "and checksums, and print what it holds.",
        examples=["embedspace info news.set", "embedspace info news.index --json", "embedspace info news-map"],
        handler=run,
    )
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    describe = {"embedspace.index": _index, "embedspace.map": _map, "embedspace.vae": _vae}.get(saved_format(args.path), _set)
    info, lines = describe(args.path)
    if args.json:
        emit_json(info)
    else:
        for line in lines:
            print(printable(line))
    return 0


def _model_line(model) -> str:
    return f"model:   {model.describe() if model else 'unknown'} [{model.backend if model else '-'}]"


def _set(path):
    space = EmbeddingSet.load(path)
    info = {
        "path": path,
        "format": "embedspace.embeddingset",
        "n": len(space),
        "d": space.dim,
        "dtype": str(space.stored_vectors.dtype),
        "model": space.model.to_dict() if space.model else None,
        "columns": [str(c) for c in space.table.columns],
    }
    return info, [f"{path}: EmbeddingSet, {info['n']} vectors x {info['d']} ({info['dtype']}), checksums ok",
                  _model_line(space.model), f"columns: {', '.join(info['columns'])}"]


def _index(path):
    index = load_index(path)
    info = {
        "path": path,
        "format": "embedspace.index",
        "n": index.n,
        "d": index.d,
        "kind": index.kind,
        "model": index.model.to_dict() if index.model else None,
        "bm25": index.has_bm25,
        "columns": index.columns,
    }
    lexical = ", with BM25" if info["bm25"] else ""
    return info, [f"{path}: search index ({index.kind}{lexical}), {index.n} vectors x {index.d}, checksums ok",
                  _model_line(index.model), f"columns: {', '.join(info['columns'])}",
                  f"search it: embedspace search {path} \"your query\""]


def _map(path):
    manifest = read_manifest(Path(path), MAP_FORMAT, MAP_FORMAT_VERSION, verify=True)
    model = ModelIdentity.from_dict(manifest.get("model"))
    info = {
        "path": path,
        "format": MAP_FORMAT,
        "n": manifest.get("n"),
        "n_clusters": manifest.get("n_clusters"),
        "model": model.to_dict() if model else None,
        "files": sorted(manifest.get("files", {})),
    }
    page = Path(path) / "map.html"
    return info, [f"{path}: map of {info['n']} documents in {info['n_clusters']} clusters, checksums ok",
                  _model_line(model), f"files:   {', '.join(info['files'])}",
                  *([f"open it: {page}"] if page.is_file() else [])]


def _vae(path):
    vae = load_vae(path)
    config = vae.config
    info = {
        "path": path,
        "format": "embedspace.vae",
        "encoder": config.encoder,
        "latent_dim": config.latent_dim if config.has_latent else 0,
        "vocab_size": len(vae.vocab),
        "max_length": config.max_length,
    }
    latent = f"{info['latent_dim']}-d latent space" if config.has_latent else "no latent space (a language model)"
    return info, [f"{path}: VAE, {config.encoder} encoder, {latent}, {info['vocab_size']:,}-word vocabulary, checksums ok",
                  f"try it:  embedspace vae sample {path} -n 5"]
