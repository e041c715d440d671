"""Generate from the latent space: train a small sentence VAE, then sample and interpolate.

Uses only the public API. On the shipped caption corpus this takes a few minutes on two
CPU cores::

    python scripts/example_vae.py                      # corpus:sts-captions, 8 minutes at most
    python scripts/example_vae.py --corpus my.txt --minutes 15

``--tiny`` trains a very small model for one epoch (what the test suite runs).
"""

from __future__ import annotations

import argparse

import embedspace as es


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="corpus:sts-captions", help="sentences to learn from")
    parser.add_argument("--out", default="captions.vae", help="where to save the VAE")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget")
    parser.add_argument("--tiny", action="store_true", help="a very small model, one epoch (a smoke test)")
    args = parser.parse_args()

    config = es.vae.VAEConfig()
    options = {"max_minutes": args.minutes}
    if args.tiny:
        config = es.vae.VAEConfig(embed_dim=32, hidden_dim=64, encoder_hidden_dim=32, latent_dim=8, min_count=1)
        options = {"epochs": 1, "train_config": es.vae.TrainConfig(threads=1)}
    vae = es.vae.train(args.corpus, args.out, config=config, overwrite=True, seed=0, **options)
    print(vae)

    print("\nsamples from the prior:")
    for sentence in vae.sample(5, seed=0):
        print("  ", sentence)

    a, b = "a man is playing a guitar.", "a dog is running on the beach."
    print(f"\ninterpolation from '{a}' to '{b}':")
    for sentence in vae.interpolate(a, b, steps=6):
        print("  ", sentence)

    print("\nreconstruction:", vae.reconstruct(["two children are playing in the snow."])[0])
    print("latent arithmetic:", vae.arithmetic("a man is riding a horse.", "a man.", "a woman."))


if __name__ == "__main__":
    main()
