"""Command-line verbs, one module each; :mod:`embedspace.cli` registers them."""
