"""The text VAE: learning, save/load, generation, metrics, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, snapshot

torch = pytest.importorskip("torch")

import embedspace as es  # noqa: E402
from embedspace.vae import TrainConfig, VAEConfig, Vocabulary  # noqa: E402

TINY = VAEConfig(embed_dim=32, hidden_dim=64, encoder_hidden_dim=32, latent_dim=8, min_count=1, max_length=40)
FAST = TrainConfig(batch_size=32, threads=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models gain nothing from a second thread, and on a busy machine lose a lot.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(sentences):
    return sentences[:500]


@pytest.fixture(scope="module")
def tiny_vae(corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("vae") / "tiny.vae"
    vae = es.vae.train(corpus, path, config=TINY, train_config=FAST, epochs=2, seed=0, progress=False)
    return vae, path


def test_a_tiny_vae_lowers_its_loss_in_a_few_steps(corpus):
    from embedspace.vae.model import SentenceVAE, make_batch

    vocab = Vocabulary.build(corpus, min_count=1)
    torch.manual_seed(0)
    model = SentenceVAE(TINY.replace(vocab_size=len(vocab)))
    batch = make_batch([vocab.encode(t) for t in corpus[:64]])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        terms = model(batch, sample=False)
        return terms["rec"].mean() + terms["kl"].sum(-1).mean()

    model.eval()
    with torch.no_grad():
        before = float(loss())
    model.train()
    for _ in range(15):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert float(loss()) < 0.8 * before


def test_bag_of_words_loss_makes_z_predict_the_words(corpus, tmp_path):
    from embedspace.vae.model import SentenceVAE, make_batch

    vocab = Vocabulary.build(corpus, min_count=1)
    torch.manual_seed(0)
    model = SentenceVAE(TINY.replace(vocab_size=len(vocab), bow_weight=1.0))
    batch = make_batch([vocab.encode(t) for t in corpus[:64]])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    with torch.no_grad():
        before = float(model(batch, sample=False)["bow"].mean())
    for _ in range(20):
        optimizer.zero_grad()
        model(batch, sample=False)["bow"].mean().backward()
        optimizer.step()
    with torch.no_grad():
        after = model(batch, sample=False)["bow"]  # (B,) nats over each sentence's words
    assert after.shape == (64,) and float(after.mean()) < 0.8 * before
    model.eval()
    with torch.no_grad():
        assert "bow" not in model(batch)  # not part of the reported ELBO

    for bad in (-1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(es.InputError, match="bow_weight"):
            TINY.replace(bow_weight=bad).validate()
    with pytest.raises(es.InputError, match="language model"):
        TINY.replace(encoder="none", bow_weight=1.0).validate()

    vae = es.vae.train(corpus, tmp_path / "bow.vae", config=TINY.replace(bow_weight=1.0), train_config=FAST, epochs=1, progress=False)
    loaded = es.vae.load(tmp_path / "bow.vae")
    assert loaded.config.bow_weight == 1.0
    small = vae.batch_of(corpus[:2])
    with torch.no_grad():
        assert torch.equal(vae.model.logits(torch.zeros(2, 8), small), loaded.model.logits(torch.zeros(2, 8), small))


def test_training_writes_a_loadable_vae_with_identical_logits(tiny_vae):
    vae, path = tiny_vae
    assert (path / "weights.safetensors").is_file() and (path / "vocab.json").is_file()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "embedspace.vae" and manifest["model_config"]["latent_dim"] == 8
    assert len(vae.history) == 2 and vae.history[-1]["valid_elbo"] < vae.history[0]["valid_elbo"] + 5
    loaded = es.vae.load(path)
    batch = vae.batch_of(["a man is playing a guitar.", "two dogs run on the grass."])
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(vae.model.logits(z, batch), loaded.model.logits(z, batch))
    assert loaded.reconstruct(["a man is playing a guitar."]) == vae.reconstruct(["a man is playing a guitar."])


def test_generation_api(tiny_vae):
    vae, _ = tiny_vae
    path = vae.interpolate("a man is playing a guitar.", "a woman is slicing an onion.", steps=5)
    assert len(path) == 7 and all(isinstance(s, str) for s in path)
    assert len(vae.interpolate("a cat.", "a dog.", steps=0, method="spherical")) == 2
    assert len(vae.sample(4, seed=1)) == 4 and vae.sample(3, seed=2) == vae.sample(3, seed=2)
    assert len(vae.sample(2, temperature=0.8, seed=3)) == 2
    assert len(vae.reconstruct(["a man is playing a guitar.", "a dog."], beam_size=3)) == 2
    assert isinstance(vae.arithmetic("a man is playing a guitar.", "a man.", "a woman."), str)
    with pytest.raises(es.InputError, match="spherical"):
        vae.interpolate("a", "b", method="cubic")
    with pytest.raises(es.InputError, match="encoder='embedding'"):
        vae.decode_embeddings(np.zeros((1, 384), dtype=np.float32))


def test_decoding_continues_prefixes_and_spends_word_bonuses(tiny_vae, corpus):
    import torch

    from embedspace.vae.sampling import greedy_decode, sample_decode

    vae, _ = tiny_vae
    z = torch.as_tensor(vae.encode(corpus[:6]))
    limit = vae.config.max_length
    greedy = greedy_decode(vae.model, z, max_length=limit)
    prefixes = [row[: k % 3] for k, row in enumerate(greedy)]  # empty, one- and two-word prefixes mixed
    assert sample_decode(vae.model, z, max_length=limit, temperature=0.0, prefixes=prefixes) == greedy
    forced = [[5, 6], [], [7], [5, 6], [], [7]]
    out = sample_decode(vae.model, z, max_length=limit, temperature=0.0, prefixes=forced)
    assert all(row[: len(p)] == p for row, p in zip(out, forced))
    word = len(vae.vocab) - 1  # a rare word greedy decoding does not choose unaided
    bonus = torch.zeros(len(z), len(vae.vocab))
    bonus[:, word] = 1e4
    boosted = sample_decode(vae.model, z, max_length=limit, temperature=0.0, bonus=bonus)
    assert all(row[0] == word and word not in row[1:] for row in boosted)  # spent once chosen
    assert float(bonus.sum()) == 0.0


def test_metrics_have_the_contract_keys(tiny_vae, corpus):
    vae, _ = tiny_vae
    result = vae.evaluate(corpus[:40], samples=8, progress=False)
    for key in ("nll", "elbo", "kl", "ppl", "active_units", "mi", "bleu"):
        assert key in result
    assert 0 < result["nll"] < result["elbo"] + 1.0 and result["kl"] >= 0 and result["ppl"] > 1
    assert 0 <= result["active_units"] <= 8 and 0 <= result["bleu"] <= 100


def test_language_model_baseline_has_no_latent(corpus):
    lm = es.vae.train(corpus[:200], encoder="none", config=TINY, train_config=FAST, epochs=1, progress=False)
    result = lm.evaluate(corpus[:20], samples=5, progress=False)
    assert result["kl"] == 0 and result["bleu"] is None and result["nll"] == pytest.approx(result["elbo"])
    assert len(lm.sample(2, seed=0)) == 2
    with pytest.raises(es.InputError, match="language model"):
        lm.reconstruct(["a cat."])


def test_embedding_encoder_decodes_points_of_the_semantic_space(corpus, encoder, tmp_path):
    vae = es.vae.train(corpus[:200], tmp_path / "e.vae", encoder="embedding", config=TINY, train_config=FAST, epochs=1,
                       sentence_encoder=encoder, progress=False)
    assert vae.config.sentence_dim == 384 and vae.config.sentence_model["dim"] == 384
    vectors = encoder.encode(corpus[:4])
    assert len(vae.decode_embeddings(vectors)) == 4
    centroid = vectors.mean(axis=0)
    assert len(vae.decode_embeddings(centroid)) == 1
    loaded = es.vae.load(tmp_path / "e.vae")
    assert loaded.reconstruct(corpus[:2]) == vae.reconstruct(corpus[:2])
    space = es.embed(corpus[:6], encoder=encoder, progress=False)
    table = vae.decode_centroids(space, ["x", "x", "y", "y", -1, None])
    assert table["label"].tolist() == ["x", "y"] and table["size"].tolist() == [2, 2]
    assert all(isinstance(s, str) for s in table["sentence"])
    with pytest.raises(es.InputError, match="no column"):
        vae.decode_centroids(space, "cluster")


@pytest.mark.slow
def test_refined_decoding_finds_sentences_that_embed_nearer(corpus, encoder, cli, tmp_path):
    from embedspace.vae.refine import refine_decode

    vae = es.vae.train(corpus[:300], tmp_path / "e.vae", encoder="embedding", config=TINY, train_config=FAST, epochs=2,
                       sentence_encoder=encoder, progress=False)
    held_out = corpus[300:308]
    targets = encoder.encode(held_out)

    def cosines(texts):
        vectors = encoder.encode(texts)
        return (vectors * targets).sum(1) / np.linalg.norm(vectors, axis=1)

    greedy = vae.decode_embeddings(targets)
    refined, reported = refine_decode(vae, targets, rounds=2, progress=False)
    assert len(refined) == len(held_out) and all(isinstance(s, str) and s for s in refined)
    assert np.allclose(reported, cosines(refined), atol=5e-3)  # the cosines are the sentences' own
    assert cosines(refined).mean() > cosines(greedy).mean() + 0.05, (cosines(greedy), cosines(refined))
    assert vae.decode_embeddings(targets, refine=0) == greedy
    # Restarts: the first search of each target is the single search, so with the score
    # being the cosine alone the best of three is never worse.
    single = refine_decode(vae, targets, rounds=1, fluency=0.0, progress=False)[1]
    sentences, best_of_three = refine_decode(vae, targets, rounds=1, restarts=3, fluency=0.0, progress=False)
    assert len(sentences) == len(held_out) and np.all(best_of_three >= single - 1e-3), (single, best_of_three)
    # ... and the other two start elsewhere: from the pool's next best distinct candidates.
    from embedspace.vae.refine import _Search

    one, three = _Search(vae, targets, 0.0), _Search(vae, targets, 0.0, restarts=3)
    one.start(0), three.start(0)
    n = len(targets)
    assert three.best[:n] == one.best
    starts = [{tuple(three.best[r * n + i]) for r in range(3)} for i in range(n)]
    assert sum(len(s) == 3 for s in starts) >= n // 2, starts
    assert np.allclose(best_of_three, cosines(sentences), atol=5e-3)
    for bad, message in ((targets[:0], "no points"), (targets[:, :10], "size 384"), (targets, "rounds")):
        with pytest.raises(es.InputError, match=message):
            refine_decode(vae, bad, rounds=-1 if message == "rounds" else 1, progress=False)
    with pytest.raises(es.InputError, match="restarts"):
        refine_decode(vae, targets, restarts=0, progress=False)
    status, stdout, stderr = cli("vae", "reconstruct", tmp_path / "e.vae", held_out[0], "--refine", "1", "--restarts", "2", "--json")
    assert status == 0, stderr
    assert json.loads(stdout)["reconstructions"][0]["text"] == held_out[0]
    status, _, stderr = cli("vae", "reconstruct", tmp_path / "e.vae", held_out[0], "--refine", "1", "--restarts", "0")
    assert status == 2 and stderr.strip().startswith("error:") and "Traceback" not in stderr
    for verb in (("reconstruct", held_out[0]), ("eval", tmp_path / "missing.txt")):  # restarts without a search
        status, _, stderr = cli("vae", *verb[:1], tmp_path / "e.vae", verb[1], "--restarts", "3")
        assert status == 2 and stderr.strip() == "error: --restarts 3 needs --refine N (restarts repeat the refining search)"
    (tmp_path / "held.txt").write_text("\n".join(held_out) + "\n")
    status, stdout, stderr = cli("vae", "eval", tmp_path / "e.vae", tmp_path / "held.txt", "--samples", "4", "--refine", "1", "--json")
    assert status == 0, stderr
    scores = json.loads(stdout)
    assert scores["refine_rounds"] == 1 and 0 <= scores["bleu_refined"] <= 100 and scores["cosine_refined"] > 0
    assert scores["refine_restarts"] == 1


def _interrupt_validation(monkeypatch, call: int) -> None:
    """Make the ``call``-th validation of a training run raise KeyboardInterrupt (a kill)."""
    import importlib

    vt = importlib.import_module("embedspace.vae.training")
    calls = {"n": 0}
    real = vt._validate

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(vt, "_validate", failing)


def test_interrupted_training_resumes(corpus, tmp_path, monkeypatch):
    _interrupt_validation(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        es.vae.train(corpus[:200], tmp_path / "r.vae", config=TINY, train_config=FAST, epochs=2, progress=False)
    assert not (tmp_path / "r.vae").exists() and (tmp_path / ".r.vae.train" / "last.pt").is_file()
    with pytest.raises(es.OutputExistsError, match="resume=True"):
        es.vae.train(corpus[:200], tmp_path / "r.vae", config=TINY, train_config=FAST, epochs=2, progress=False)
    vae = es.vae.train(corpus[:200], tmp_path / "r.vae", config=TINY, train_config=FAST, epochs=2, resume=True, progress=False)
    assert [r["epoch"] for r in vae.history] == [1, 2]
    assert (tmp_path / "r.vae").is_dir() and not (tmp_path / ".r.vae.train").exists()


def test_weight_average_follows_the_weights_with_a_short_window_at_first(corpus):
    import importlib

    from embedspace.vae.model import SentenceVAE

    WeightAverage = importlib.import_module("embedspace.vae.training").WeightAverage

    torch.manual_seed(0)
    model = SentenceVAE(TINY.replace(vocab_size=50))
    average = WeightAverage(model, 0.99)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)  # window (1 + 1) / (10 + 1): moves 9/11 of the way
    for a, s in zip(average.model.parameters(), start):
        assert torch.allclose(a, s + 9 / 11, atol=1e-6) and not a.requires_grad
    for _ in range(2000):
        average.update(model)
    assert all(torch.allclose(a, s + 1.0, atol=1e-5) for a, s in zip(average.model.parameters(), start))


@pytest.mark.parametrize("name", ["weight_drop", "average_decay"])
@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan")])
def test_weight_drop_and_average_decay_must_lie_in_0_1(name, bad):
    with pytest.raises(es.InputError, match=name):
        FAST.replace(**{name: bad}).validate()
    assert FAST.replace(**{name: 0.5}).validate()


def test_averaged_weights_with_weight_drop_are_scored_kept_saved_and_resumed_exactly(corpus, tmp_path, monkeypatch):
    import importlib

    vt = importlib.import_module("embedspace.vae.training")
    settings = FAST.replace(average_decay=0.95, weight_drop=0.3)
    run = dict(valid=corpus[200:260], config=TINY, train_config=settings, epochs=2, seed=3, progress=False)
    whole = es.vae.train(corpus[:200], tmp_path / "whole.vae", **run)
    assert all(r["valid_elbo"] != r["valid_elbo_unaveraged"] for r in whole.history)
    assert whole.history[-1]["valid_elbo"] < whole.history[0]["valid_elbo"]
    # The model returned is the averaged one that validation scored, not the trained weights.
    kept = min(whole.history, key=lambda r: r["valid_objective"])
    ids = [whole.vocab.encode(t) for t in corpus[200:260]]
    rescored = vt._validate(whole.model, ids, None, settings.batch_size * 4, settings.free_bits)
    assert rescored["elbo"] == pytest.approx(kept["valid_elbo"], abs=1e-9)
    assert rescored["elbo"] != pytest.approx(kept["valid_elbo_unaveraged"], abs=1e-6)

    with monkeypatch.context() as patch:
        _interrupt_validation(patch, 3)  # in epoch 2, after epoch 1's checkpoint (two validations an epoch)
        with pytest.raises(KeyboardInterrupt):
            es.vae.train(corpus[:200], tmp_path / "r.vae", **run)
    resumed = es.vae.train(corpus[:200], tmp_path / "r.vae", resume=True, **run)
    saved = es.vae.load(tmp_path / "whole.vae")
    for (name, a), b, c in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), saved.model.state_dict().values()):
        assert torch.equal(a, b), name
        assert torch.equal(a, c), name


def test_weight_drop_acts_in_training_only(corpus):
    from embedspace.vae.model import SentenceVAE, make_batch

    vocab = Vocabulary.build(corpus, min_count=1)
    torch.manual_seed(0)
    model = SentenceVAE(TINY.replace(vocab_size=len(vocab), dropout=0.0))  # no other randomness
    batch = make_batch([vocab.encode(t) for t in corpus[:16]])
    model.train()
    assert torch.equal(model(batch, sample=False)["rec"], model(batch, sample=False)["rec"])
    model.eval()  # gradients on, as when fine-tuning or probing, but not training
    assert torch.equal(model(batch, sample=False, weight_drop=0.5)["rec"], model(batch, sample=False)["rec"])
    model.train()
    assert not torch.allclose(model(batch, sample=False, weight_drop=0.5)["rec"], model(batch, sample=False)["rec"])


def test_locked_dropout_keeps_one_mask_per_sentence_and_round_trips(corpus, tmp_path):
    from embedspace.vae.model import LockedDropout, SentenceVAE

    drop = LockedDropout(0.5).train()
    torch.manual_seed(0)
    out = drop(torch.ones(64, 9, 16))  # (B, T, F)
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert set(out.unique().tolist()) == {0.0, 2.0} and abs(float(out.mean()) - 1.0) < 0.1
    assert torch.equal(drop.eval()(out), out)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dropout probability"):
            LockedDropout(bad)
    vocab = Vocabulary.build(corpus, min_count=1)
    assert isinstance(SentenceVAE(TINY.replace(vocab_size=len(vocab), locked_dropout=True)).dropout, LockedDropout)
    with pytest.raises(es.InputError, match="locked_dropout"):
        TINY.replace(locked_dropout="yes").validate()
    es.vae.train(corpus[:120], tmp_path / "l.vae", config=TINY.replace(locked_dropout=True), train_config=FAST,
                 epochs=1, seed=0, progress=False)
    assert es.vae.load(tmp_path / "l.vae").config.locked_dropout is True
    assert VAEConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "locked_dropout"}).locked_dropout is False


def test_word_embeddings_start_from_the_sentence_models_token_embeddings(corpus, tmp_path):
    from embedspace.vae.pretrained import token_embedding_init
    from embedspace.vae.vocab import UNK

    words = ["monday", "tuesday", "friday", "stocks", "shares", "bonds", "banana", "apple", "n't", "stock-index"]
    vocab = Vocabulary(words, tokenizer="whitespace", lowercase=False)
    vectors, rows = token_embedding_init(vocab, 8)
    assert vectors.shape == (len(vocab), 8) and vectors.dtype == np.float32
    assert rows.tolist() == [False, True, False, False] + [True] * len(words)  # <pad>, <s>, </s> keep their start
    assert abs(float(vectors[rows][1:].std()) - 1.0) < 1e-5 and np.isfinite(vectors[UNK]).all()
    full, _ = token_embedding_init(vocab, 384)  # the model's own width: no projection
    wide, _ = token_embedding_init(vocab, 32)  # 11 rows span at most 11 directions; the rest start at 0
    assert wide.shape == (len(vocab), 32) and not wide[:, 12:].any() and wide[:, :8].any()

    def nearest(table, word):
        unit = table / np.linalg.norm(table, axis=1, keepdims=True)
        i = vocab.itos.index(word)
        scores = unit[4:] @ unit[i]
        return [w for _, w in sorted(zip(-scores, words)) if w != word][0]

    assert nearest(full, "monday") in ("tuesday", "friday") and nearest(full, "stocks") in ("shares", "bonds", "stock-index")
    with pytest.raises(es.InputError, match="wider than"):
        token_embedding_init(vocab, 385)

    # training starts from them (a learning rate of 1e-9 leaves the start in place), or not
    still = FAST.replace(learning_rate=1e-9)
    vae = es.vae.train(corpus[:120], tmp_path / "i.vae", config=TINY, train_config=still, epochs=1, seed=0, progress=False)
    start, filled = token_embedding_init(vae.vocab, TINY.embed_dim)
    np.testing.assert_allclose(vae.model.embedding.weight.detach().numpy()[filled], start[filled], atol=1e-6)
    assert es.vae.load(tmp_path / "i.vae").train_config.embedding_init == "sentence-model"
    plain = es.vae.train(corpus[:120], config=TINY, train_config=still.replace(embedding_init="random"), epochs=1, seed=0, progress=False)
    assert not np.allclose(plain.model.embedding.weight.detach().numpy()[filled], start[filled], atol=1e-2)
    with pytest.raises(es.InputError, match="embedding_init"):
        FAST.replace(embedding_init="glove").validate()
    assert TrainConfig.from_dict({k: v for k, v in FAST.to_dict().items() if k != "embedding_init"}).embedding_init == "random"
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text("{}")
    with pytest.raises(es.InputError, match="model.safetensors"):
        token_embedding_init(vocab, 8, tmp_path / "bare")


def test_cli_train_sample_reconstruct_interpolate_eval(cli, corpus, tmp_path):
    data = tmp_path / "s.txt"
    data.write_text("\n".join(corpus[:150]) + "\n", encoding="utf-8")
    out = tmp_path / "c.vae"
    status, _, err = cli("vae", "train", data, "-o", out, "--epochs", "1", "--hidden-dim", "64", "--latent-dim", "8", "--quiet")
    assert status == 0, err
    status, stdout, err = cli("vae", "interpolate", out, "a man is playing a guitar.", "a dog runs.", "--steps", "3")
    assert status == 0, err
    assert len(stdout.splitlines()) == 5
    status, stdout, _ = cli("vae", "sample", out, "-n", "3", "--seed", "1")
    assert status == 0 and len(stdout.splitlines()) == 3
    status, stdout, _ = cli("vae", "reconstruct", out, "a cat.", "two men ride horses.", "--json")
    assert status == 0 and len(json.loads(stdout)["reconstructions"]) == 2
    status, stdout, err = cli("vae", "eval", out, data, "--samples", "4", "--json")
    assert status == 0, err
    result = json.loads(stdout)
    assert set(result) >= {"nll", "elbo", "kl", "ppl", "active_units", "mi", "bleu"} and result["nll"] > 0
    assert cli("vae", "train", data, "-o", out, "--epochs", "1")[0] == 2  # exists, no --overwrite
    assert es.vae.load(out).train_config.embedding_init == "sentence-model"
    status, _, err = cli("vae", "train", data, "-o", out, "--epochs", "1", "--hidden-dim", "64", "--latent-dim", "8",
                         "--embedding-init", "random", "--overwrite", "--quiet")
    assert status == 0, err
    assert es.vae.load(out).train_config.embedding_init == "random"


def _bad_inputs(tmp_path, tiny_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "long.txt").write_text("one two three four five six\nseven eight nine ten eleven twelve\n")
    (tmp_path / "plain").mkdir()
    foreign = tmp_path / "foreign"
    es.EmbeddingSet(np.zeros((1, 2), dtype=np.float32), __import__("pandas").DataFrame({"text": ["x"]})).save(foreign)
    newer = tmp_path / "newer.vae"
    subprocess.run(["cp", "-r", str(tiny_path), str(newer)], check=True)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "o.vae"
    return [
        (["vae", "train", tmp_path / "empty.txt", "-o", out], "empty"),
        (["vae", "train", tmp_path / "long.txt", "-o", out, "--max-length", "3"], "longer than --max-length 3"),
        (["vae", "sample", tmp_path / "missing.vae"], "no such directory"),
        (["vae", "sample", tmp_path / "plain"], "not a VAE model"),
        (["vae", "interpolate", foreign, "a", "b"], "this is an EmbeddingSet, not a VAE model"),
        (["vae", "reconstruct", newer, "a cat."], "upgrade embedspace"),
        (["vae", "interpolate", tiny_path, "a", "b", "--steps", "-1"], "at least 0"),
        (["vae", "reconstruct", tiny_path, "a cat.", "--refine", "2"], "--encoder embedding"),
        (["vae", "eval", tiny_path, tmp_path / "long.txt", "--refine", "1"], "--encoder embedding"),
        (["vae", "eval", tiny_path, tmp_path / "empty.txt"], "empty"),
        (["vae", "train", tmp_path / "long.txt", "-o", out, "--max-minutes", "0"], "must be positive"),
    ]


def test_bad_input_gives_one_line_and_changes_nothing(cli, tiny_vae, tmp_path):
    _, tiny_path = tiny_vae
    cases = _bad_inputs(tmp_path, tiny_path)
    before = snapshot(tmp_path)
    for argv, message in cases:
        status, stdout, stderr = cli(*argv)
        assert status == 2, (argv, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (argv, stderr)
        assert "Traceback" not in stderr
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "o.vae").exists()


def test_vocabulary_round_trip_and_tokenizers():
    vocab = Vocabulary.build(["The cat's toy, isn't it?", "the <unk> cat"], min_count=1)
    assert vocab.tokens("The cat's toy, isn't it?") == ["the", "cat's", "toy", ",", "isn't", "it", "?"]
    assert vocab.decode(vocab.encode("the cat's toy, isn't it?")) == "the cat's toy, isn't it?"
    assert vocab.encode("<unk>") == [1] and vocab.encode("zebra") == [1]
    again = Vocabulary.from_json(vocab.to_json())
    assert again.itos == vocab.itos
    ptb = Vocabulary.build([" the u.s. <unk> said N "], min_count=1, tokenizer="whitespace", lowercase=False)
    assert ptb.tokens(" the u.s. <unk> said N ") == ["the", "u.s.", "<unk>", "said", "N"]


def test_default_corpus_is_shipped():
    table = es.read("corpus:sts-captions")
    assert len(table) == 2404 and set(table["source"]) == {"images", "track5.en-en"}


def test_import_embedspace_vae_is_light():
    code = "import sys, embedspace, embedspace.vae; embedspace.vae.VAEConfig(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
    assert out == "False"


def test_importing_the_training_submodule_keeps_es_vae_train_the_function():
    code = ("import embedspace as es; from embedspace.vae.training import WeightAverage; "
            "import importlib; module = importlib.import_module('embedspace.vae.training'); "
            "print(es.vae.train.__module__, callable(es.vae.train), module.WeightAverage is WeightAverage)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
    assert out == "embedspace.vae True True"


def test_example_script_runs(sentences, tmp_path):
    data = tmp_path / "s.txt"
    data.write_text("\n".join(sentences[:150]) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "example_vae.py"), "--corpus", str(data), "--out", str(tmp_path / "x.vae"), "--tiny"],
        capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "interpolation" in result.stdout


def test_inputs_outside_the_vocabulary_are_said_or_refused(tiny_vae, caplog, cli):
    """Issue 31, item 8: a sentence of unknown words came back as all <unk> without a word."""
    from embedspace.errors import InputError

    vae, path = tiny_vae
    known = " ".join(vae.vocab.itos[4:10])
    with caplog.at_level("WARNING", logger="embedspace"):
        vae.reconstruct([known])
    assert not [r for r in caplog.records if "vocabulary" in r.getMessage()]
    mostly = known.split()[0] + " zyzzyvas quuxes florbs blorps"
    with caplog.at_level("WARNING", logger="embedspace"):
        vae.reconstruct([mostly])
    assert any("80% of the words of input 1" in r.getMessage() for r in caplog.records)
    if vae.config.encoder != "embedding":
        with pytest.raises(InputError, match="none of the words of input 2"):
            vae.interpolate(known, "zyzzyvas quuxes florbs")
        status, _, err = cli("vae", "reconstruct", path, "zyzzyvas quuxes florbs")
        assert status == 2 and err.startswith("error: none of the words") and "vocabulary" in err

