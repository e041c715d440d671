"""Embed a collection on Ray: embedspace's reader, one encoder actor per worker, the usual set written by the driver.

What runs where
---------------
- **Read** (Ray Data read tasks, on any node that can see the input path): the input is
  read by embedspace's own reader (:func:`embedspace.sources.iter_chunks`), so cleaning,
  column handling and errors are identical to the local path; each chunk becomes a block.
- **Embed** (``map_batches`` with one encoder *actor* per worker): every actor loads the
  encoder once with the default backend, embeds its batches through the embedding cache
  (when the cache directory is shared or local to the node) and returns the vectors.
- **Write** (the driver): blocks come back in input order (``preserve_order``) and are
  appended to the output set by the streaming writer, so memory stays flat.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from embedspace._fs import check_output_path
from embedspace._progress import progress_bar
from embedspace.distributed.session import quiet_ray_data, ray_session, unwrap_ray_error
from embedspace.embeddingset import FORMAT as SET_FORMAT
from embedspace.embeddingset import EmbeddingSetWriter
from embedspace.encoding import EmbeddingCache, EmbedSummary, encode_texts, load_encoder
from embedspace.sources import iter_chunks
from embedspace.store import arrow_safe

__all__ = ["embed_with_ray"]

log = logging.getLogger("embedspace")


_VECTOR = "__embedspace_vector"


_CACHED = "__embedspace_cached"


def _source_datasource(source, text_col: str, strict: bool, chunk_rows: int):
    """A Ray Data datasource that reads an input with embedspace's own reader.

    One read task per input (a file, a folder, or a shipped corpus); the task yields the
    cleaned chunks as Arrow tables, so rows, order and errors match the local path.
    """
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    source = str(source)
    size = Path(source).stat().st_size if Path(source).is_file() else None

    def read():
        import pyarrow as pa

        for chunk in iter_chunks(source, text_col=text_col, strict=strict, chunk_rows=chunk_rows):
            yield pa.Table.from_pandas(arrow_safe(chunk.reset_index(drop=True)), preserve_index=False)

    class EmbedspaceSource(Datasource):
        def estimate_inmemory_data_size(self):
            return size

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            metadata = BlockMetadata(num_rows=None, size_bytes=size, input_files=None, exec_stats=None)
            return [ReadTask(read, metadata)]

    return EmbedspaceSource()


class _EncoderActor:
    """Ray Data callable class: one encoder per actor, loaded once, cache-backed."""

    def __init__(self, model, backend, batch_size, use_cache, threads, max_tokens=None):
        if threads:
            os.environ["EMBEDSPACE_THREADS"] = str(threads)

        self.encoder = load_encoder(model, backend=backend, batch_size=batch_size, max_tokens=max_tokens)
        self.cache = EmbeddingCache() if use_cache else None

    def __call__(self, batch):
        import pyarrow as pa

        texts = batch.column("text").to_pylist()
        vectors, n_cached = encode_texts(self.encoder, texts, cache=self.cache, progress=False)
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        column = pa.FixedSizeListArray.from_arrays(flat, self.encoder.dim)
        cached = pa.array([n_cached] + [0] * (len(texts) - 1), type=pa.int32())
        return batch.append_column(_VECTOR, column).append_column(_CACHED, cached)


def embed_with_ray(
    source,
    output,
    *,
    text_col: str = "text",
    model: str | None = None,
    backend: str = "auto",
    batch_size: int | None = None,
    max_tokens: int | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    strict: bool = False,
    cache: bool = True,
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    chunk_rows: int = 20_000,
    rows_per_task: int = 4096,
    progress: bool | None = None,
):
    """Embed a source on a Ray cluster into an EmbeddingSet directory.

    Parameters
    ----------
    source : str or path-like
        Any input :func:`embedspace.read` accepts; on a multi-node cluster it must be
        readable at the same path from the workers.
    output : path-like
        The set directory, written by the driver (atomically).
    address : str, optional
        Ray cluster address; ``None`` starts a local cluster.
    workers : int, optional
        Encoder actors; default: cluster CPUs // ``threads_per_worker``.
    threads_per_worker : int, optional
        CPU threads (and Ray CPUs) per actor; default 2, or 1 on a one-CPU cluster.
    rows_per_task : int, default=4096
        Rows per ``map_batches`` call (texts are length-sorted inside it).
    Other parameters are those of :func:`embedspace.encoding.pipeline.embed_to_disk`.

    Returns
    -------
    EmbedSummary
    """

    check_output_path(output, overwrite=overwrite, inputs=[source], kind=SET_FORMAT)
    started = time.perf_counter()
    identity = load_encoder(model, backend=backend, batch_size=batch_size, max_tokens=max_tokens).identity  # no weights
    ray = ray_session(address)
    extra = {"source": str(source), "text_col": text_col, "engine": "ray"}
    with quiet_ray_data(progress):
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = threads_per_worker or (2 if cpus >= 2 else 1)
        extra["ray_workers"] = n_workers = workers or max(1, cpus // threads)
        actor_options = {"model": model, "backend": identity.backend, "batch_size": batch_size, "use_cache": cache,
                         "threads": threads, "max_tokens": max_tokens}
        dataset = _embedding_dataset(ray, source, text_col, strict, chunk_rows, actor_options, rows_per_task,
                                     n_workers, threads)
        with EmbeddingSetWriter(output, dim=identity.dim, model=identity, dtype=dtype, overwrite=overwrite,
                                extra=extra, inputs=[source]) as writer:
            n_cached = _write_batches(dataset, writer, identity.dim, progress)
    return EmbedSummary(
        path=Path(output), n=writer.rows, dim=identity.dim, n_cached=n_cached,
        seconds=time.perf_counter() - started, backend=identity.backend, model=identity.name,
    )


def _embedding_dataset(ray, source, text_col, strict, chunk_rows, actor_options, rows_per_task, n_workers, threads):
    """The lazy Ray Data pipeline: embedspace's reader, then one encoder actor per worker."""
    # the read is light and must not wait for CPUs the encoder actors hold
    dataset = ray.data.read_datasource(_source_datasource(source, text_col, strict, chunk_rows), num_cpus=0)
    return dataset.map_batches(
        _EncoderActor,
        fn_constructor_kwargs=actor_options,
        batch_size=rows_per_task,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=n_workers),
        num_cpus=threads,
    )


def _write_batches(dataset, writer, dim: int, progress) -> int:
    """Append the embedded batches to ``writer`` in input order; return how many vectors came from the cache."""
    n_cached = 0
    bar = progress_bar(None, "embedding (ray)", progress=progress, unit="text")
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            column = batch.column(_VECTOR).combine_chunks()
            vectors = np.asarray(column.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
            n_cached += int(np.asarray(batch.column(_CACHED)).sum())
            writer.append(vectors, batch.drop_columns([_VECTOR, _CACHED]).to_pandas())
            bar.update(len(vectors))
    except Exception as exc:  # a failed Ray task carries the embedspace error as its cause
        inner = unwrap_ray_error(exc)
        if inner is not exc:
            raise inner from None
        raise
    finally:
        bar.close()
    return n_cached
