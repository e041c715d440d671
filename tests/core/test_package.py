"""The public surface and the promise that importing embedspace is light."""

from __future__ import annotations

import subprocess
import sys

import embedspace


def test_import_does_not_load_heavy_libraries():
    code = (
        "import sys, embedspace; "
        "heavy = [m for m in ('torch', 'faiss', 'umap', 'hdbscan', 'sentence_transformers', 'transformers', "
        "'onnxruntime', 'openvino', 'pandas', 'sklearn') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_all_lists_exactly_the_public_names():
    import __future__

    public = sorted(
        name
        for name, value in vars(embedspace).items()
        if not name.startswith("_") and not isinstance(value, (type(sys), __future__._Feature))
    )
    assert sorted(embedspace.__all__) == public
    assert len(set(embedspace.__all__)) == len(embedspace.__all__)


def test_errors_inherit_builtins():
    assert issubclass(embedspace.InputError, ValueError)
    assert issubclass(embedspace.FormatError, ValueError)
    assert issubclass(embedspace.ModelMismatchError, ValueError)
    assert issubclass(embedspace.MissingDependencyError, ImportError)
    assert issubclass(embedspace.OutputExistsError, FileExistsError)
