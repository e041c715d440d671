"""Word-level vocabulary of a text VAE: tokenize, count, map words to ids and back.

Ids 0-3 are the special tokens ``<pad>``, ``<unk>``, ``<s>`` (start) and ``</s>`` (end);
the words follow in order of decreasing frequency, which is what an adaptive softmax
needs (frequent words in its cheap head). A literal ``<unk>`` in the corpus (PTB has
them) is the unknown token. The vocabulary is saved as plain JSON. No torch here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterable, Sequence

from embedspace.errors import FormatError, InputError

__all__ = ["Vocabulary", "tokenize", "detokenize", "PAD", "UNK", "BOS", "EOS", "SPECIALS"]

SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
PAD, UNK, BOS, EOS = 0, 1, 2, 3

# <unk>-style markers, words with inner apostrophes/hyphens, clitics ('s, n't), punctuation.
_SIMPLE = re.compile(r"<[a-z]+>|\w+(?:[-'’]\w+)*|'\w+|[^\w\s]")
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}]|'s|n't|'re|'ve|'ll|'d|'m)(?= |$)")
_NO_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def tokenize(text: str, *, mode: str = "simple", lowercase: bool = True) -> list[str]:
    """Split a sentence into tokens.

    Parameters
    ----------
    text : str
    mode : {"simple", "whitespace"}, default="simple"
        ``simple`` separates words and punctuation; ``whitespace`` splits on spaces only.
    lowercase : bool, default=True

    Returns
    -------
    list of str
    """
    if lowercase:
        text = text.lower()
    if mode == "whitespace":
        return text.split()
    return _SIMPLE.findall(text)


def detokenize(tokens: Sequence[str], *, mode: str = "simple") -> str:
    """Join tokens into a readable sentence (punctuation attached for ``simple``)."""
    text = " ".join(tokens)
    if mode == "whitespace":
        return text
    text = _NO_SPACE_BEFORE.sub(r"\1", text)
    return _NO_SPACE_AFTER.sub(r"\1", text)


class Vocabulary:
    """Map tokens to ids and back.

    Parameters
    ----------
    words : list of str
        The vocabulary words, most frequent first, without the special tokens.
    tokenizer : {"simple", "whitespace"}, default="simple"
    lowercase : bool, default=True

    Examples
    --------
    >>> vocab = Vocabulary.build(["the cat sat .", "the dog sat ."], min_count=1)
    >>> vocab.decode(vocab.encode("the cat sat ."))
    'the cat sat.'
    """

    def __init__(self, words: Sequence[str], *, tokenizer: str = "simple", lowercase: bool = True):
        self.tokenizer = tokenizer
        self.lowercase = bool(lowercase)
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        min_count: int = 2,
        max_size: int = 20000,
        tokenizer: str = "simple",
        lowercase: bool = True,
    ) -> "Vocabulary":
        """Count the tokens of ``texts`` and keep the frequent ones.

        Parameters
        ----------
        texts : iterable of str
        min_count : int, default=2
            Minimum number of occurrences of a kept word.
        max_size : int, default=20000
            Most words kept (specials excluded); ties broken alphabetically.
        tokenizer, lowercase
            See :func:`tokenize`.

        Raises
        ------
        InputError
            If no word reaches ``min_count``.
        """
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text, mode=tokenizer, lowercase=lowercase))
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
        if not ranked:
            raise InputError(
                f"no word occurs at least {min_count} times in the corpus ({len(counts)} distinct words); "
                "give more text or a lower min_count"
            )
        return cls([w for w, _ in ranked[:max_size]], tokenizer=tokenizer, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocabulary<{len(self)} tokens, tokenizer={self.tokenizer}>"

    def tokens(self, text: str) -> list[str]:
        """Tokenize ``text`` the way this vocabulary was built."""
        return tokenize(text, mode=self.tokenizer, lowercase=self.lowercase)

    def encode(self, text: str) -> list[int]:
        """Return the word ids of ``text`` (unknown words become ``UNK``; no start/end ids)."""
        return [self.stoi.get(t, UNK) for t in self.tokens(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids into a sentence, stopping at ``</s>`` and skipping ``<pad>``/``<s>``."""
        words = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else SPECIALS[UNK])
        return detokenize(words, mode=self.tokenizer)

    def normalize(self, text: str) -> str:
        """The text as the model sees it, tokenized and joined back (a fair BLEU reference)."""
        return detokenize(self.tokens(text), mode=self.tokenizer)

    def to_json(self) -> str:
        """Serialise as JSON text."""
        data = {"tokenizer": self.tokenizer, "lowercase": self.lowercase, "specials": list(SPECIALS), "words": self.itos[len(SPECIALS):]}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        """Rebuild from :meth:`to_json` output; raise :class:`FormatError` if it is not one."""
        try:
            data = json.loads(text)
            if list(data["specials"]) != list(SPECIALS):
                raise ValueError(f"special tokens {data['specials']} differ from {list(SPECIALS)}")
            return cls(list(data["words"]), tokenizer=data["tokenizer"], lowercase=bool(data["lowercase"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"unreadable vocabulary ({exc})") from None
