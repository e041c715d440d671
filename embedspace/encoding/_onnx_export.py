"""Export a sentence-transformers model to ONNX once, and run it with ONNX Runtime or OpenVINO.

sentence-transformers' own ``backend="onnx"`` needs ``optimum``, which cannot be
installed beside sentence-transformers 6, so the export is done here: the transformer
is traced with ``torch.onnx.export`` (keyword inputs, opset 17, eager attention so that
ONNX Runtime can fuse it) and returns the token states; pooling and normalisation
happen in numpy as the model's config says. The exported folder (``model.onnx``,
``tokenizer.json`` and, on demand, ``model-int8.onnx``) is cached under
``<cache>/models/<weights sha256>/`` and written atomically under a file lock, so
concurrent processes export once.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from embedspace._fs import cache_dir
from embedspace.encoding._quantize import int8_weights_model
from embedspace.encoding.model_files import read_layout
from embedspace.errors import InputError, require

log = logging.getLogger("embedspace")

__all__ = ["exported_model", "make_runner"]

_EXPORT_VERSION = "1"


def _export_dir(weights_sha256: str) -> Path:
    return cache_dir() / "models" / f"{weights_sha256[:24]}-v{_EXPORT_VERSION}"


def exported_model(folder: Path, weights_sha256: str) -> Path:
    """Return the cached export folder of a model, exporting it first if needed.

    Parameters
    ----------
    folder : Path
        The sentence-transformers model folder.
    weights_sha256 : str
        Hash of the model files (the cache key).

    Returns
    -------
    Path
        Folder holding ``model.onnx`` and ``tokenizer.json``.
    """
    target = _export_dir(weights_sha256)
    if (target / "model.onnx").is_file() and (target / "tokenizer.json").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.onnx").is_file():
            return target
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            log.info("exporting %s to ONNX (once per model)", folder)
            _export(folder, tmp)
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _export(folder: Path, dest: Path) -> None:
    """Trace the transformer of ``folder`` into ``dest/model.onnx`` and save its tokenizer."""
    require("torch", feature="exporting a model to ONNX")
    require("transformers", feature="exporting a model to ONNX")
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in our output

    layout = read_layout(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(layout.transformer_dir), local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"{folder}: the fast backends need a 'fast' tokenizer; use backend='torch'")
    tokenizer.backend_tokenizer.save(str(dest / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(layout.transformer_dir), attn_implementation="eager", local_files_only=True)
    model.eval()
    takes_token_types = "token_type_ids" in tokenizer.model_input_names

    class _TokenStates(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if takes_token_types else {}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    example = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "token_states": {0: "batch", 1: "seq"}}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _TokenStates(model),
            (),
            str(dest / "model.onnx"),
            kwargs={"input_ids": example, "attention_mask": example},
            input_names=["input_ids", "attention_mask"],
            output_names=["token_states"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _int8_model(export: Path) -> Path:
    """Dynamic int8 quantisation (per-channel weights) of the exported model, cached."""
    target = export / "model-int8.onnx"
    if target.is_file():
        return target
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if not target.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = export / f"model-int8.tmp-{os.getpid()}.onnx"
            quantize_dynamic(str(export / "model.onnx"), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
            os.replace(tmp, target)
    return target


def _ort_session(ort, path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _split_runner(ort, path: Path, threads: int):
    """Two ONNX Runtime sessions of ``threads // 2`` threads, each running half of every batch.

    On 2 cores this is what OpenVINO's two streams do: measured 1.61x plain
    sentence-transformers against 1.57x for one session of 2 threads (3,000 STS-B
    sentences, 5 interleaved rounds), and steadier on a shared machine, because the two
    halves never wait on each other's threads. Exact: the same graph on fewer rows.
    ``onnx-int8`` keeps one session: its dynamic quantisation takes one activation scale
    per call, so halving a batch would change its vectors.
    """
    from concurrent.futures import ThreadPoolExecutor

    sessions = [_ort_session(ort, path, threads // 2) for _ in range(2)]
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embedspace-onnx")

    def run(ids, mask):
        half = (len(ids) + 1) // 2
        parts = [(0, half), (half, len(ids))]
        futures = [pool.submit(session.run, None, {"input_ids": ids[a:b], "attention_mask": mask[a:b]})
                   for session, (a, b) in zip(sessions, parts) if b > a]
        outputs = [future.result()[0] for future in futures]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    return run


def make_runner(folder: Path, weights_sha256: str, backend: str, threads: int):
    """Return ``run(ids, mask) -> token_states`` for a fast backend.

    Parameters
    ----------
    folder : Path
        Model folder.
    weights_sha256 : str
        Model hash (export cache key).
    backend : {"onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8", "openvino-int8-mixed", "openvino-int8-bf16"}
    threads : int
        Intra-op threads.

    Returns
    -------
    callable
        Takes int64 arrays ``ids`` and ``mask`` of shape (b, t) and returns float32
        token states of shape (b, t, hidden).
    """
    export = exported_model(folder, weights_sha256)
    if backend in ("onnx", "onnx-int8"):
        ort = require("onnxruntime", feature=f"the {backend} backend")
        # the plain export: ORT's own level-3 fusions ran faster here than the
        # onnxruntime.transformers fused graph (Attention/SkipLayerNorm: 0.88x)
        path = export / "model.onnx" if backend == "onnx" else _int8_model(export)
        if backend == "onnx" and threads >= 2:
            return _split_runner(ort, path, threads)
        session = _ort_session(ort, path, threads)

        def run(ids, mask):
            return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        return run
    if backend.startswith("openvino"):
        ov = _import_openvino(backend)
        core = ov.Core()
        precision = "bf16" if backend.endswith("bf16") else "f32"
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        path = export / "model.onnx"
        if backend in ("openvino-int8", "openvino-int8-mixed", "openvino-int8-bf16"):
            path = int8_weights_model(export, "w8-qko" if backend == "openvino-int8-mixed" else "w8")
            # activations quantised per group of 32 inputs; with bf16 around them, groups of
            # 128: on 32 x 256-token posts, one thread, 37.5 rows/s (cos to fp32 0.99891)
            # against 31.1 at 32 (0.99924), 33.0 at 64, 38.1 at 192, 29.5 for plain bf16
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = "128" if backend == "openvino-int8-bf16" else "32"
        if threads >= 2:
            # two streams (threads/2 each, one per core on 2 cores), each running half of
            # the batch: measured 1.10x the one-request LATENCY mode on 2 cores (fp32)
            config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2})
        compiled = core.compile_model(str(path), "CPU", config)
        requests = [compiled.create_infer_request() for _ in range(2 if threads >= 2 else 1)]

        def run(ids, mask):
            parts = np.array_split(np.arange(len(ids)), len(requests))
            active = [(r, p) for r, p in zip(requests, parts) if len(p)]
            for request, rows in active:
                request.start_async({"input_ids": ids[rows[0]:rows[-1] + 1], "attention_mask": mask[rows[0]:rows[-1] + 1]})
            out = []
            for request, _ in active:
                request.wait()
                out.append(np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True))
            return out[0] if len(out) == 1 else np.concatenate(out)

        return run
    raise InputError(f"unknown backend '{backend}'")


def _import_openvino(backend: str):
    """Import OpenVINO without its usage telemetry.

    ``import openvino`` imports its model converter, which sends a usage event to Google
    Analytics (and writes a client id under ``~/intel``) unless the user opted out. A
    tool that promises to run offline must not phone home, so while openvino is first
    imported ``openvino_telemetry`` is made unimportable: the converter then binds its
    own no-op stub. Other code that imports ``openvino_telemetry`` later is unaffected.
    """
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    hide = "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # makes ``import openvino_telemetry`` raise ImportError
    try:
        return require("openvino", feature=f"the {backend} backend")
    finally:
        if hide and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]
