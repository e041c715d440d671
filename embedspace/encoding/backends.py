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

    Measured by ``scripts/bench_embed.py`` (see ``scripts/BENCHMARKS.md``, section
    bench_embed.py): on the project's 2-core Xeon (avx512_bf16 + avx512_vnni, no AMX)
    ``openvino-bf16`` runs slower than plain fp32 and ``openvino-int8-mixed`` is the fastest
    backend that keeps 0.99 of the neighbours; on a 2-core AMD EPYC (Zen 4, native
    avx512_bf16) ``openvino-bf16`` is, and batches of 64 (:func:`default_batch_size`) run
    it faster than 32.

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
    """The fastest backend whose maps cluster like :func:`default_backend`'s, on this CPU.

    Not a default: every verb's ``auto`` is :func:`default_backend`, so that a text gets one
    vector per model on a machine and ``embed`` then ``map`` never embeds twice. This is the
    explicit choice for maps of long documents where speed matters more than exact
    neighbours (``embedspace map --backend openvino-int8-bf16``): a map needs vectors that
    cluster alike, and its long documents make embedding most of its time. Where the CPU
    runs bf16 natively (:func:`_fast_bf16`) that is ``openvino-int8-bf16``, otherwise
    :func:`default_backend`. On the 2-core AMD EPYC (Zen 4) of :func:`default_backend`
    it embeds long posts faster than ``openvino-bf16`` at a lower top-10 overlap, and its
    maps of 20 Newsgroups and AG News keep NMI within about 0.01 and the same stability
    (measured by ``scripts/bench_embed.py`` and ``scripts/bench_map.py``; see
    ``scripts/BENCHMARKS.md``, section bench_embed.py, "The map's backend").

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

    Rule: AMX tiles are fast on any CPU that has them; avx512_bf16 without AMX is fast only
    on AMD (Zen 4 and later execute it natively), since on Intel it ran OpenVINO's bf16 path
    slower than plain fp32 (measured by ``scripts/bench_embed.py``; see
    ``scripts/BENCHMARKS.md``, section bench_embed.py).
    """
    if "amx_bf16" in flags:
        return True
    return "avx512_bf16" in flags and _cpu_vendor() == "AuthenticAMD"


def _cpu_vendor() -> str:
    return _cpuinfo("vendor_id")


BATCH_SIZES = {"openvino-bf16": 64}
"""Texts per forward pass where 32 is not the best: ``openvino-bf16`` runs faster at 64
(two streams of half a batch each) on the AMD EPYC of :func:`default_backend`. Measured by
``scripts/bench_embed.py`` (see ``scripts/BENCHMARKS.md``, section bench_embed.py)."""


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
