"""Which encoder backend and batch size suit this CPU, and how many threads to use.

``auto`` backends are chosen by measurement (see :func:`default_backend`), from the CPU's
vendor and instruction-set flags in ``/proc/cpuinfo`` and from which runtimes are
installed. :mod:`embedspace.encoding.encoders` re-exports the public names.
"""

from __future__ import annotations

import os

__all__ = ["BACKENDS", "BATCH_SIZES", "PADDING_SENSITIVE", "default_backend", "default_batch_size", "default_map_backend"]

BACKENDS = ("auto", "torch", "onnx", "openvino", "openvino-bf16", "onnx-int8", "openvino-int8", "openvino-int8-mixed",
            "openvino-int8-bf16")

PADDING_SENSITIVE = frozenset({"openvino-int8", "openvino-int8-mixed", "openvino-bf16", "openvino-int8-bf16"})
"""Backends whose vector for a text changes with the width its batch is padded to (and with
nothing else about the batch). ``onnx-int8`` is not listed: ONNX Runtime's dynamic int8
takes one activation scale per batch, so its vectors depend on the other texts anyway."""


def _cpuinfo(field: str) -> str:
    """The value of ``field`` for the first CPU in /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpu_flags() -> set[str]:
    return set(_cpuinfo("flags").split())


def default_backend() -> str:
    """The backend ``auto`` resolves to on this machine.

    Rule: the fastest backend whose top-10 neighbour overlap against torch fp32 is
    >= 0.99 on real text, among those this CPU runs well; else exact ONNX, then torch.

    Measured by ``scripts/bench_embed.py --n 6000 --rounds 3 --long 200`` (one locked
    run) on this project's 2-core machine (Xeon, avx512_bf16 + avx512_vnni, no AMX):
    6,000 distinct STS-B train sentences, batch 32, 2 threads; speed is the median ratio
    to plain ``SentenceTransformer.encode`` (434 sentences/s) over 3 interleaved rounds:

    =========================  ===========  ======  =============  ==================
    backend                    x plain      top-10  max abs delta  20 News (x, top10)
    =========================  ===========  ======  =============  ==================
    ``openvino-int8-mixed``    1.51         0.9918  3.1e-3         1.36, 0.9920
    ``openvino`` (exact)       1.39         1.0000  3.4e-7         1.27, 1.0000
    ``onnx`` (exact)           1.25         1.0000  3.7e-7         0.99, 1.0000
    ``openvino-bf16``          0.87         0.9956  1.6e-3         0.78, 0.9945
    ``openvino-int8``          2.36         0.9746  2.1e-2         1.86, 0.9745
    ``onnx-int8``              2.32         0.9100  4.7e-2         1.64, 0.9100
    =========================  ===========  ======  =============  ==================

    The same run on a 2-core AMD EPYC (Zen 4: avx512_bf16 executed natively, no AMX;
    plain library 303 sentences/s), batch 32: ``openvino-bf16`` 2.97x, top-10 0.9957,
    max abs delta 1.6e-3; ``openvino-int8-mixed`` 1.85x, 0.9918; ``openvino`` 1.79x;
    ``onnx`` 1.62x; ``openvino-int8`` 3.02x, 0.9744; ``onnx-int8`` 4.11x, 0.9100. On that
    CPU bf16 is the fastest backend that keeps 0.99 of the neighbours, and batches of 64
    (:func:`default_batch_size`) run it 1.05x faster than 32.

    So: with fast bf16 (:func:`_fast_bf16`: AMX tiles, or AMD's native avx512_bf16)
    ``openvino-bf16``; with int8 dot products (VNNI) ``openvino-int8-mixed``; otherwise
    ``onnx``, then ``openvino``, then ``torch``. ``EMBEDSPACE_BACKEND`` overrides.
    """
    forced = os.environ.get("EMBEDSPACE_BACKEND")
    if forced:
        return forced
    import importlib.util

    flags = _cpu_flags()
    if _fast_bf16(flags) and importlib.util.find_spec("openvino") is not None:
        return "openvino-bf16"
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} and importlib.util.find_spec("openvino") is not None:
        return "openvino-int8-mixed"
    if importlib.util.find_spec("onnxruntime") is not None:
        return "onnx"
    if importlib.util.find_spec("openvino") is not None:
        return "openvino"
    return "torch"


def default_map_backend() -> str:
    """The backend ``auto`` resolves to when ``embedspace map`` embeds text.

    A map needs vectors that cluster alike, not each document's exact ten neighbours, and
    its long documents make embedding most of its time. So where the CPU runs bf16
    natively (:func:`_fast_bf16`) the map embeds with ``openvino-int8-bf16``, otherwise
    with :func:`default_backend`. Measured on the 2-core AMD EPYC (Zen 4) of
    :func:`default_backend`:

    - speed (``scripts/bench_embed.py --n 3000 --long 300``): 3.20x plain
      sentence-transformers on 20 Newsgroups posts against 2.42x for ``openvino-bf16``
      (3.75x against 2.89x on STS-B sentences); top-10 overlap 0.960 against 0.996;
    - maps (UMAP seeds 0-4, ``scripts/bench_map.py``): 20 Newsgroups NMI 0.576 (8-9
      clusters, noise <= 8.5%, stability 0.935) against 0.588 (9-10, 0.910); AG News 0.419
      (stability 0.983) against 0.423 (0.983).

    ``EMBEDSPACE_BACKEND`` overrides, as for :func:`default_backend`.

    Returns
    -------
    str
    """
    import importlib.util

    if not os.environ.get("EMBEDSPACE_BACKEND") and _fast_bf16(_cpu_flags()) \
            and importlib.util.find_spec("openvino") is not None:
        return "openvino-int8-bf16"
    return default_backend()


def _fast_bf16(flags: set[str]) -> bool:
    """Whether this CPU runs bf16 matrix products faster than fp32.

    Intel's avx512_bf16 without AMX ran OpenVINO's bf16 path at 0.87x plain fp32 on the
    Xeon above; AMD's Zen 4 and later execute it natively (2.97x). AMX tiles are fast on
    any CPU that has them.
    """
    if "amx_bf16" in flags:
        return True
    return "avx512_bf16" in flags and _cpu_vendor() == "AuthenticAMD"


def _cpu_vendor() -> str:
    return _cpuinfo("vendor_id")


BATCH_SIZES = {"openvino-bf16": 64}
"""Texts per forward pass where 32 is not the best: measured with ``scripts/bench_embed.py``
(6,000 STS-B sentences, 2 threads): ``openvino-bf16`` 918-941 sentences/s at 64 against
871-879 at 32 on the AMD EPYC of :func:`default_backend` (two streams of half a batch each)."""


def default_batch_size(backend: str) -> int:
    """Texts per forward pass for ``backend`` (``auto`` resolved first) when none is given.

    Parameters
    ----------
    backend : str

    Returns
    -------
    int
        64 for ``openvino-bf16``, 32 otherwise (see :data:`BATCH_SIZES`).
    """
    chosen = default_backend() if backend == "auto" else backend
    return BATCH_SIZES.get(chosen, 32)


def encoder_threads() -> int:
    """CPU threads an encoder uses: ``EMBEDSPACE_THREADS``, else the CPUs this process may run on."""
    env = os.environ.get("EMBEDSPACE_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1
