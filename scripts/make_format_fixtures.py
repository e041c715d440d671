#!/usr/bin/env python3
"""Write tests/fixtures/formats/: a small set, index, map and VAE directory, as the code of the day writes them.

The contract tests load these (tests/contract/test_saved_formats.py) so that a change of
layout or code never breaks directories users already have. Rerun only to add a fixture
for a new format version; keep the old ones.

    .venv/bin/python scripts/make_format_fixtures.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import embedspace as es

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "formats"


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    docs = es.read("corpus:20newsgroups").groupby("label").head(3).reset_index(drop=True)
    docs = docs.assign(text=docs["text"].str.slice(0, 300))
    space = es.embed(docs, backend="onnx", progress=False)
    space.save(OUT / "news.set")
    index = es.build_index(es.load(OUT / "news.set"))
    index.save(OUT / "news.index")
    mapped = es.map(space, seed=0)
    es.write_map(mapped, OUT / "news.map", label_col="label")
    from embedspace.vae import TrainConfig, VAEConfig

    sentences = es.read("corpus:sts-captions")["text"].tolist()[:300]
    config = VAEConfig(embed_dim=16, hidden_dim=32, encoder_hidden_dim=16, latent_dim=4, min_count=1, max_length=30)
    es.vae.train(sentences, OUT / "captions.vae", config=config, train_config=TrainConfig(batch_size=32, threads=1),
                 epochs=1, seed=0, progress=False)
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(ROOT)}  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
