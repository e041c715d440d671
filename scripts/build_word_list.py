"""Rebuild ``corpora/words/english-30k.txt``, the vocabulary of ``embedspace relate``.

The list is the 30,000 most frequent English words of wordfreq 3.1.1 (Robyn Speer; data
CC BY-SA 4.0, see ``corpora/README.md``), in frequency order, keeping words made only of
the letters a-z (no digits, apostrophes or dots) and dropping one-letter words except
"a" and "i". Needs the ``corpora`` extra: ``pip install -e .[corpora]``.

    python scripts/build_word_list.py            # writes corpora/words/english-30k.txt
    python scripts/build_word_list.py --check    # only compares with the shipped file
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "corpora" / "words" / "english-30k.txt"
SIZE = 30_000
WORD = re.compile(r"[a-z]+")


def build() -> bytes:
    import wordfreq

    words = [w for w in wordfreq.top_n_list("en", 2 * SIZE, wordlist="best")
             if WORD.fullmatch(w) and (len(w) > 1 or w in ("a", "i"))]
    if len(words) < SIZE:
        raise SystemExit(f"wordfreq gave only {len(words)} words")
    return ("\n".join(words[:SIZE]) + "\n").encode("utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    args = parser.parse_args(argv)
    data = build()
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = OUTPUT.is_file() and OUTPUT.read_bytes() == data
        print(f"{'identical' if same else 'DIFFERENT'}: sha256 {digest}")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(data)
    print(f"wrote {OUTPUT} ({SIZE} words, {len(data)} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
