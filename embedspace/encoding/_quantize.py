"""int8 recipes for the exported model, chosen by measurement.

Why this module exists: on a CPU without AMX, int8 (VNNI) is the only reduced precision
that runs faster than fp32, and the question is how much of the model can be int8 while
each sentence keeps its 10 nearest neighbours (>= 0.99 of them, against torch fp32).
Measured on 6,000 distinct STS-B train sentences (``scripts/bench_embed.py``; the
experiments are listed in the report of issue 2):

- ONNX Runtime's dynamic int8 (``onnx-int8``) keeps 0.91: it quantises each activation
  tensor with ONE scale per batch, and a few outlier channels of BERT's LayerNorm
  outputs take the whole range. Quantising one group of MatMuls at a time showed every
  group except the query projections dropping overlap below 0.99 on its own.
- int8 weights alone (activations fp32) keep 0.980 (nearest rounding) or 0.985 (GPTQ,
  :func:`gptq_quantize`): per-output-channel int8 weights are the floor of accuracy.
- OpenVINO quantises activations per group of 32 inputs of each token when the graph
  gives it int8 weights (``DequantizeLinear`` -> ``MatMul``, :func:`int8_weights_model`):
  every MatMul int8 keeps 0.976; only the attention query, key and output projections
  (recipe ``w8-qko``) keep 0.992.

Every derived file is cached beside the exported fp32 model (keyed by the weights'
sha256) and written atomically under a file lock (:func:`cached_file`): concurrent
processes build it once, and a killed build leaves nothing behind. Calibration text
(GPTQ only) is the shipped 20 Newsgroups *train* split, never the benchmark's sentences.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from embedspace.errors import InputError
from embedspace.sources import read

log = logging.getLogger("embedspace")

__all__ = ["WEIGHT_RECIPES", "cached_file", "calibration_texts", "gptq_quantize", "int8_weights_model"]

_RECIPE_VERSION = "1"


# --- cached files --------------------------------------------------------------------------
def cached_file(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first (atomically, under a lock) if it is missing.

    Parameters
    ----------
    target : Path
        The cached file.
    build : callable
        ``build(tmp_path)`` writes the file to ``tmp_path``; it is renamed to ``target``
        only when ``build`` returns.

    Returns
    -------
    Path
    """
    if target.is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            return target
        tmp = target.with_name(f"{target.stem}.tmp-{os.getpid()}{target.suffix}")
        try:
            build(tmp)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
    return target


# --- calibration ---------------------------------------------------------------------------
def calibration_texts(n_sentences: int = 768, n_posts: int = 48) -> list[str]:
    """Real text for calibration: sentences and whole posts of 20 Newsgroups (train split).

    Short sentences are what embedspace embeds most; whole posts (truncated by the
    tokenizer) cover long inputs. The choice is deterministic.

    Parameters
    ----------
    n_sentences : int, default=768
    n_posts : int, default=48

    Returns
    -------
    list of str
    """

    posts = read("corpus:20newsgroups-train")["text"].tolist()
    bodies = [p.split("\n\n", 1)[-1] for p in posts]
    sentences: list[str] = []
    for body in bodies:
        for part in re.split(r"(?<=[.!?])\s+", " ".join(body.split())):
            words = part.split()
            if 4 <= len(words) <= 40 and not re.search(r"[@<>|]|^In article", part):
                sentences.append(part)
                break  # one per post, so many posts (topics, writers) are covered
        if len(sentences) >= n_sentences:
            break
    step = max(1, len(bodies) // max(n_posts, 1))
    return sentences + [" ".join(b.split()) for b in bodies[::step][:n_posts]]


def _input_moments(model_path: Path, tensors: list[str], texts: list[str], tokenizer, batch_size: int = 32) -> dict:
    """Sum of x x^T over the real (unpadded) tokens, for each named tensor of the fp32 model."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    known = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    moments: dict[str, np.ndarray] = {}
    encodings = tokenizer.encode_batch(texts)
    for start in range(0, len(encodings), batch_size):
        block = encodings[start:start + batch_size]
        width = max(len(e.ids) for e in block)
        ids = np.zeros((len(block), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(block):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        values = session.run(tensors, {"input_ids": ids, "attention_mask": mask})
        keep = mask.reshape(-1).astype(bool)
        for name, value in zip(tensors, values):
            x = value.reshape(-1, value.shape[-1])[keep].astype(np.float64)
            moments[name] = moments.get(name, 0) + x.T @ x
    return moments


# --- GPTQ ----------------------------------------------------------------------------------
def gptq_quantize(weight: np.ndarray, moments: np.ndarray, *, damp: float = 0.01, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Round a weight matrix to symmetric per-output-channel int8 with GPTQ.

    Parameters
    ----------
    weight : ndarray of shape (k, n)
        ``y = x @ weight`` (ONNX MatMul layout).
    moments : ndarray of shape (k, k)
        ``sum x x^T`` over calibration inputs of this layer.
    damp : float, default=0.01
        Added to the diagonal, as a fraction of its mean, for a stable inverse.
    block : int, default=128
        Rows rounded between two lazy updates of the rest (speed only).

    Returns
    -------
    q : ndarray of shape (k, n), int8
    scale : ndarray of shape (n,), float32
        ``weight ~= q * scale``.
    """
    w = weight.astype(np.float64).T.copy()  # (n, k): one row per output channel
    n, k = w.shape
    scale = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127.0
    h = np.array(moments, dtype=np.float64, copy=True)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    order = np.argsort(-np.diag(h))  # most active inputs first ("act-order")
    w, h = w[:, order], h[np.ix_(order, order)]
    h[np.diag_indices(k)] += damp * np.mean(np.diag(h))
    hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper Cholesky factor of H^-1
    q = np.zeros((n, k), dtype=np.float64)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        wb = w[:, i1:i2].copy()
        errors = np.zeros_like(wb)
        hb = hinv[i1:i2, i1:i2]
        for j in range(i2 - i1):
            col = wb[:, j]
            qc = np.clip(np.round(col / scale), -127, 127)
            q[:, i1 + j] = qc
            err = (col - qc * scale) / hb[j, j]
            wb[:, j:] -= np.outer(err, hb[j, j:])
            errors[:, j] = err
        w[:, i2:] -= errors @ hinv[i1:i2, i2:]
    q = q[:, np.argsort(order)]
    return q.T.astype(np.int8), scale.astype(np.float32)


# --- recipes -------------------------------------------------------------------------------
#: Recipes of int8 *weights* with dequantisation in the graph (``DequantizeLinear`` ->
#: ``MatMul``), which OpenVINO compiles to int8 fully-connected kernels that quantise the
#: activations on the fly per group of 32 inputs of each token (much finer than ONNX
#: Runtime's one scale per batch tensor).
#: ``only``: regular expressions of the MatMul nodes to quantise (``None``: all).
WEIGHT_RECIPES: dict[str, dict] = {
    "w8": {"gptq": False, "only": None},
    "w8-gptq": {"gptq": True, "only": None},
    # only the least sensitive products (attention query, key and output projections):
    # ~25% of the FLOPs; measured top-10 overlap 0.9918 (GPTQ: 0.9922, not worth a
    # calibration pass), against 0.976 with every MatMul in int8
    "w8-qko": {"gptq": False, "only": [r"/query/", r"/key/", r"/attention/output/"]},
}


def _weight_matmuls(model) -> dict[str, tuple[str, str]]:
    """MatMul node name -> (activation input, weight initializer) for constant-weight MatMuls."""
    inits = {i.name for i in model.graph.initializer}
    return {
        n.name: (n.input[0], n.input[1])
        for n in model.graph.node
        if n.op_type == "MatMul" and n.input[1] in inits and n.input[0] not in inits
    }


def _tokenizer_of(export: Path, max_length: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def build_int8_weights(source: Path, dest: Path, *, gptq: bool, only: list[str] | None = None, tokenizer=None) -> None:
    """Write ``source`` with every constant-weight MatMul as int8 weights + ``DequantizeLinear``.

    Weights are symmetric int8 with one scale per output channel (nearest rounding, or
    GPTQ on :func:`calibration_texts` when ``gptq``); activations stay fp32 in the graph,
    so the runtime decides how to quantise them. ``only``: regular expressions of the
    MatMul node names to quantise (default all).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    matmuls = _weight_matmuls(model)
    if only is not None:
        matmuls = {k: v for k, v in matmuls.items() if any(re.search(p, k) for p in only)}
    moments = {}
    if gptq:
        if tokenizer is None:
            raise InputError("GPTQ calibration needs the model's tokenizer")
        moments = _input_moments(source, sorted({a for a, _ in matmuls.values()}), calibration_texts(), tokenizer)
    inits = {i.name: i for i in model.graph.initializer}
    dequantize = []
    for node in model.graph.node:
        if node.name not in matmuls:
            continue
        activation, name = matmuls[node.name]
        w = numpy_helper.to_array(inits[name])
        if gptq:
            q, scale = gptq_quantize(w, moments[activation])
        else:
            scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        model.graph.initializer.remove(inits[name])
        model.graph.initializer.extend([
            numpy_helper.from_array(q, name + "_int8"),
            numpy_helper.from_array(scale, name + "_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), name + "_zero"),
        ])
        dequantize.append(helper.make_node(
            "DequantizeLinear", [name + "_int8", name + "_scale", name + "_zero"], [name + "_dq"],
            axis=1, name=name + "_DequantizeLinear"))
        node.input[1] = name + "_dq"
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(dequantize + nodes)
    onnx.save(model, str(dest))


def int8_weights_model(export: Path, recipe: str = "w8", max_length: int = 512) -> Path:
    """Return the cached int8-weight model of ``recipe`` (see :data:`WEIGHT_RECIPES`).

    Returns
    -------
    Path
        ``export / "model-<recipe>-r<version>.onnx"``.
    """
    if recipe not in WEIGHT_RECIPES:
        raise InputError(f"unknown weight recipe '{recipe}' (choose from {', '.join(WEIGHT_RECIPES)})")
    spec = WEIGHT_RECIPES[recipe]

    def build(tmp: Path) -> None:
        log.info("quantising the weights to int8 (%s, once per model)", recipe)
        build_int8_weights(export / "model.onnx", tmp, gptq=spec["gptq"], only=spec["only"],
                           tokenizer=_tokenizer_of(export, max_length) if spec["gptq"] else None)

    return cached_file(export / f"model-{recipe}-r{_RECIPE_VERSION}.onnx", build)
