"""The two frozen settings objects of a text VAE, saved next to its weights.

:class:`VAEConfig` holds everything needed to rebuild the network and its tokenizer
(nanoGPT's ``model_args`` idea: a checkpoint carries its constructor arguments);
:class:`TrainConfig` holds how it was (or will be) trained, including the settings that
fight posterior collapse: cyclical KL annealing (Fu et al. 2019), free bits per latent
dimension (Kingma et al. 2016) and word dropout on the decoder inputs (Bowman et al. 2016).
Both are plain frozen dataclasses that round-trip through JSON. No torch here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from embedspace.errors import FormatError, InputError

__all__ = ["VAEConfig", "TrainConfig", "ENCODERS", "TOKENIZERS", "EMBEDDING_INITS"]

ENCODERS = ("gru", "embedding", "none")
TOKENIZERS = ("simple", "whitespace")
EMBEDDING_INITS = ("sentence-model", "random")


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and tokenization of a sentence VAE.

    Attributes
    ----------
    encoder : {"gru", "embedding", "none"}, default="gru"
        ``gru``: bidirectional GRU over the tokens -> (mu, log sigma^2) (Bowman et al. 2016).
        ``embedding``: the frozen sentence embedding of the toolkit's encoder -> MLP -> (mu, log sigma^2).
        ``none``: no latent variable at all, i.e. a plain GRU language model (the baseline
        that shows what the latent code costs or buys in NLL).
    vocab_size : int, default=0
        Filled in from the vocabulary when training starts.
    embed_dim : int, default=256
        Word embedding size (shared by the GRU encoder and the decoder).
    hidden_dim : int, default=512
        Decoder GRU state size.
    encoder_hidden_dim : int, default=256
        GRU encoder state size per direction, or the MLP width of the embedding encoder.
    latent_dim : int, default=32
        Size of z.
    dropout : float, default=0.3
        Dropout on decoder input embeddings and outputs.
    locked_dropout : bool, default=False
        Draw one dropout mask per sentence and reuse it at every time step (variational
        dropout, Gal & Ghahramani 2016; the AWD-LSTM's locked dropout) instead of a new
        mask per step.
    softmax_cutoffs : tuple of int, default=()
        Word-id cutoffs of an adaptive softmax (Grave et al. 2017; exact, normalised
        probabilities at a fraction of the cost for large vocabularies); empty means a
        full softmax. Chosen from the vocabulary size when training starts.
    max_length : int, default=60
        Training sentences with more tokens are skipped; decoding stops after this many.
    tokenizer : {"simple", "whitespace"}, default="simple"
        ``simple`` splits words and punctuation; ``whitespace`` keeps pre-tokenized text
        (e.g. PTB) exactly as it is.
    lowercase : bool, default=True
    min_count : int, default=2
        Words seen fewer times become ``<unk>``.
    max_vocab : int, default=20000
        Most frequent words kept (special tokens not counted).
    sentence_model : dict or None
        Identity of the sentence encoder (``ModelIdentity.to_dict()``) for ``encoder="embedding"``.
    sentence_dim : int, default=0
        Its vector size.
    bow_weight : float, default=0
        Weight of an auxiliary bag-of-words loss (Zhao et al. 2017): a linear head predicts
        every word of the sentence from z, which makes z carry the sentence's words. Used
        in training only; it is not part of the ELBO that is reported. 0: no head. A
        language model (``encoder="none"``) has no z and takes none.
    """

    encoder: str = "gru"
    vocab_size: int = 0
    embed_dim: int = 256
    hidden_dim: int = 512
    encoder_hidden_dim: int = 256
    latent_dim: int = 32
    dropout: float = 0.3
    locked_dropout: bool = False
    softmax_cutoffs: tuple = ()
    max_length: int = 60
    tokenizer: str = "simple"
    lowercase: bool = True
    min_count: int = 2
    max_vocab: int = 20000
    sentence_model: dict | None = None
    sentence_dim: int = 0
    bow_weight: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "softmax_cutoffs", tuple(int(c) for c in self.softmax_cutoffs))

    def validate(self) -> "VAEConfig":
        """Return self after checking every field; raise :class:`InputError` naming the bad one."""
        _choice("encoder", self.encoder, ENCODERS)
        _choice("tokenizer", self.tokenizer, TOKENIZERS)
        for name in ("embed_dim", "hidden_dim", "encoder_hidden_dim", "latent_dim", "max_length", "min_count", "max_vocab"):
            _positive(name, getattr(self, name))
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.locked_dropout, bool):
            raise InputError(f"locked_dropout must be true or false, got {self.locked_dropout!r}")
        weight = self.bow_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight < float("inf"):
            raise InputError(f"bow_weight must be a finite number >= 0, got {self.bow_weight!r}")
        if self.bow_weight > 0 and not self.has_latent:
            raise InputError("bow_weight needs a latent code: a language model (encoder='none') has none")
        return self

    @property
    def has_latent(self) -> bool:
        """False for the plain language model (``encoder="none"``)."""
        return self.encoder != "none"

    def replace(self, **changes) -> "VAEConfig":
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["softmax_cutoffs"] = list(self.softmax_cutoffs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "VAEConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys are a :class:`FormatError`."""
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TrainConfig:
    """How a VAE is trained.

    Attributes
    ----------
    epochs : int, default=30
        Upper bound on passes over the training sentences.
    max_minutes : float or None, default=None
        Time budget; training stops cleanly (validating once more) when it runs out.
    clock : {"wall", "cpu"}, default="wall"
        What ``max_minutes`` measures: elapsed time, or this process's CPU time (a fair
        budget on a machine shared with other work; with one thread it equals the wall
        time of an idle machine).
    batch_size : int, default=64
        Sentences per step; batches hold sentences of similar length.
    learning_rate : float, default=1e-3
        Adam step size.
    clip_grad : float, default=5.0
        Global gradient-norm clip.
    word_dropout : float, default=0.25
        Probability of replacing a decoder input word by ``<unk>`` (Bowman et al. 2016).
    free_bits : float, default=0.25
        Per-dimension KL floor in nats (Kingma et al. 2016): a dimension whose batch-mean
        KL is below it is not pushed further towards the prior.
    kl_cycle_epochs : float, default=2.0
        Length of one cyclical annealing cycle in epochs (Fu et al. 2019).
    kl_ramp : float, default=0.5
        Fraction of each cycle during which the KL weight rises linearly from 0 to 1;
        it stays at 1 for the rest.
    weight_drop : float, default=0.0
        DropConnect on the decoder's recurrent weights (Merity et al. 2018): each entry of
        ``W_hh`` is dropped with this probability, one mask per batch.
    average_decay : float, default=0.0
        Keep an exponential moving average of the weights with this decay per step (the
        effective window is 1 / (1 - decay) steps, shorter at the start); validation, the
        kept checkpoint and the saved model use the averaged weights (Polyak averaging,
        as in the AWD-LSTM's averaged SGD). 0: no average.
    final_phase : float, default=0.3
        Share of the budget (time with ``max_minutes``, else epochs) at the end during which
        the KL weight stays at 1 and the learning rate falls linearly to a tenth: the model
        settles on the true ELBO.
    embedding_init : {"sentence-model", "random"}, default="sentence-model"
        How the word embeddings start. ``sentence-model``: from the input token embeddings
        of ``embedding_init_model`` (each word the mean of its word pieces, projected on
        the top principal directions to ``embed_dim`` and scaled to unit variance; see
        :mod:`embedspace.vae.pretrained`), chosen because on PTB it reaches a lower
        validation -ELBO than ``random`` (torch's N(0, 1) start) for the same CPU time
        (``scripts/bench_vae.py``; see ``scripts/BENCHMARKS.md``, section bench_vae.py).
        Models saved before this setting existed load as ``random``.
    embedding_init_model : str or None, default=None
        The sentence-transformers model (name on this machine or folder) for
        ``embedding_init="sentence-model"``; ``None``: the shipped all-MiniLM-L6-v2.
    valid_fraction : float, default=0.05
        Share of the corpus held out for validation when no validation file is given.
    seed : int, default=0
    threads : int or None, default=None
        torch threads (``None``: torch's default).
    """

    epochs: int = 30
    max_minutes: float | None = None
    clock: str = "wall"
    batch_size: int = 64
    learning_rate: float = 1e-3
    clip_grad: float = 5.0
    word_dropout: float = 0.25
    free_bits: float = 0.25
    kl_cycle_epochs: float = 2.0
    kl_ramp: float = 0.5
    weight_drop: float = 0.0
    average_decay: float = 0.0
    final_phase: float = 0.3
    embedding_init: str = "sentence-model"
    embedding_init_model: str | None = None
    valid_fraction: float = 0.05
    seed: int = 0
    threads: int | None = None

    def validate(self) -> "TrainConfig":
        """Return self after checking every field; raise :class:`InputError` naming the bad one."""
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise InputError(f"max_minutes must be positive, got {self.max_minutes}")
        _choice("clock", self.clock, ("wall", "cpu"))
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.word_dropout < 1.0:
            raise InputError(f"word_dropout must be in [0, 1), got {self.word_dropout}")
        if self.free_bits < 0:
            raise InputError(f"free_bits must be >= 0, got {self.free_bits}")
        if not self.kl_cycle_epochs > 0 or not 0.0 < self.kl_ramp <= 1.0:
            raise InputError(f"kl_cycle_epochs must be > 0 and kl_ramp in (0, 1], got {self.kl_cycle_epochs}, {self.kl_ramp}")
        if not 0.0 <= self.weight_drop < 1.0:
            raise InputError(f"weight_drop must be in [0, 1), got {self.weight_drop}")
        if not 0.0 <= self.average_decay < 1.0:
            raise InputError(f"average_decay must be in [0, 1), got {self.average_decay}")
        if not 0.0 <= self.final_phase < 1.0:
            raise InputError(f"final_phase must be in [0, 1), got {self.final_phase}")
        _choice("embedding_init", self.embedding_init, EMBEDDING_INITS)
        if self.embedding_init_model is not None and not isinstance(self.embedding_init_model, str):
            raise InputError(f"embedding_init_model must be a model name or folder, got {self.embedding_init_model!r}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise InputError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.threads is not None:
            _positive("threads", self.threads)
        return self

    def replace(self, **changes) -> "TrainConfig":
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Rebuild from :meth:`to_dict` output (settings saved before ``embedding_init`` existed were random starts)."""
        if isinstance(data, dict) and "embedding_init" not in data:
            data = {**data, "embedding_init": "random"}
        return _from_dict(cls, data)


def _choice(name, value, options):
    if value not in options:
        raise InputError(f"{name} must be one of {', '.join(options)}, got '{value}'")


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a whole number >= 1, got {value!r}")


def _from_dict(cls, data):
    if not isinstance(data, dict):
        raise FormatError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FormatError(f"{cls.__name__}: unknown settings {unknown} (written by a newer embedspace? upgrade it)")
    try:
        return cls(**data)
    except TypeError as exc:
        raise FormatError(f"{cls.__name__}: invalid settings ({exc})") from None
