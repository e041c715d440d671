"""A call leaves no global state changed behind it: thread counts, environment variables, loggers (DESIGN.md §2)."""

from __future__ import annotations

import logging
import os

import pytest

import embedspace as es

torch = pytest.importorskip("torch")


def _state() -> dict:
    logger = logging.getLogger("embedspace")
    return {
        "torch_threads": torch.get_num_threads(),
        "environ": dict(os.environ),
        "handlers": list(logger.handlers),
        "level": logger.level,
        "propagate": logger.propagate,
    }


@pytest.fixture
def odd_threads():
    """A thread count no embedspace default would pick, so a change cannot hide."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_embed_on_every_kind_of_backend_restores_threads_and_environment(odd_threads, sentences):
    # torch and transformers set variables of their own (KMP_*, TORCHINDUCTOR_CACHE_DIR) when first
    # imported; load them first, so that what is compared is what embedspace's calls change.
    import sentence_transformers  # noqa: F401

    before = _state()
    es.embed(sentences[:40], backend="torch", cache=False, progress=False)
    es.embed(sentences[:40], cache=False, progress=False)
    assert _state() == before


def test_map_restores_threads_and_environment(odd_threads, sentences):
    space = es.embed(sentences[:120], progress=False)
    before = _state()
    es.map(space, seed=0, progress=False)
    assert _state() == before


def test_vae_train_restores_threads_and_environment(odd_threads, sentences):
    from embedspace.vae import TrainConfig, VAEConfig

    config = VAEConfig(embed_dim=16, hidden_dim=32, encoder_hidden_dim=16, latent_dim=4, min_count=1, max_length=30)
    before = _state()
    es.vae.train(sentences[:150], config=config, train_config=TrainConfig(batch_size=32, threads=1), epochs=1,
                 progress=False)
    assert _state() == before


def test_the_command_line_removes_its_log_handler_and_restores_the_logger(cli, sentences, tmp_path):
    source = tmp_path / "s.txt"
    source.write_text("\n".join(sentences[:20]) + "\n", encoding="utf-8")
    before = _state()
    status, _, err = cli("embed", source, "-o", tmp_path / "s.set", "--quiet")
    assert status == 0, err
    status, _, _ = cli("embed", tmp_path / "missing.txt", "-o", tmp_path / "t.set")
    assert status == 2
    assert _state() == before
