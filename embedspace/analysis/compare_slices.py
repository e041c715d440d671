"""Topics per group and over time: one collection split by a column (``es.compare_groups``).

Rules:

- Topics: the set's own ``cluster`` column when it has one (a mapped set), else the
  collection is mapped with :class:`embedspace.mapping.CollectionMapper` and its topics
  are the regions of :func:`~embedspace.analysis.compare_collections.regions_of` (finer than
  the map's automatic clusters: at 7,532 posts the map has 9 clusters, too few for 20 groups).
- ``bins=None``: each distinct value of the column is a group (topics per class); each
  topic is tested with a chi-square test of "in the topic or not" against the groups
  (2 x G table). ``bins=N``: the column is ordered (numbers, or dates parsed with
  pandas) and cut into N equal-width bins (topics over time); each topic is tested with
  the Cochran-Armitage trend test over the ordered bins. Both give two-sided p-values,
  then Benjamini-Hochberg q-values over the topics.
- Within each group, topics are ranked by lift: their share of the group's documents over
  their share of the whole collection (``top_topics``). On the 20 Newsgroups test split the
  top topic by lift is the group's own (its majority label) for 18 of 20 groups, by plain
  share for 14 of 20 (``scripts/bench_compare.py --part groups``).

``scripts/bench_compare.py --part groups`` measures both on 20 Newsgroups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedspace.analysis.compare_collections import regions_of
from embedspace.analysis.compare_stats import benjamini_hochberg, cochran_armitage
from embedspace.errors import InputError
from embedspace.mapping import CollectionMapper, describe

__all__ = ["GroupComparison", "compare_groups", "group_labels"]


@dataclass
class GroupComparison:
    """What :func:`compare_groups` found.

    Attributes
    ----------
    topics : pandas.DataFrame
        One row per topic (outliers, cluster -1, last and untested): ``cluster``,
        ``label``, ``keywords``, ``size``, ``statistic`` (chi-square, or the trend's z:
        > 0 = rising), ``p_value``, ``q_value``, then one ``share:<group>`` column per
        group (share of the group's documents in the topic); ranked by p-value.
    groups : list of str
        The groups in order (bins in time order).
    counts : pandas.DataFrame
        Documents per topic (rows) and group (columns).
    space : EmbeddingSet
        The collection with ``cluster`` and ``group`` columns.
    metrics : dict
        ``by``, ``kind`` ("categorical" or "ordered"), ``bins``, ``test``, ``n``,
        ``n_groups``, ``n_topics``, ``n_significant``, ``alpha``, ``top_topics``
        (``{group: [cluster, ...]}``, the group's five topics of highest lift).
    """

    topics: object
    groups: list
    counts: object
    space: object
    metrics: dict

    def to_json(self) -> dict:
        """The ``--json`` object: the metrics and the topics with their q-values and shares."""
        keep = ["cluster", "label", "size", "statistic", "p_value", "q_value"]
        shares = [c for c in self.topics.columns if c.startswith("share:")]
        rows = []
        for record in self.topics.to_dict(orient="records"):
            row = {k: record[k] for k in keep}
            row["shares"] = {c.split(":", 1)[1]: record[c] for c in shares}
            rows.append(row)
        return {**self.metrics, "groups": self.groups, "topics": rows}


def group_labels(values, bins: int | None, column: str):
    """The group of each row: the values themselves, or N equal-width bins of a number / date column.

    Returns
    -------
    labels : ndarray of str of shape (n,)
    order : list of str
        The groups in order (sorted values, or bins in ascending order).
    kind : str
        "categorical" or "ordered".
    """
    import pandas as pd

    series = pd.Series(values).reset_index(drop=True)
    if series.isna().any():
        raise InputError(f"column '{column}' has {int(series.isna().sum())} empty value(s); fill or drop those rows")
    if bins is None:
        labels = series.astype(str).to_numpy()
        order = sorted(set(labels))
        kind = "categorical"
    else:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise InputError(f"bins must be a whole number >= 2, got {bins!r}")
        numeric = pd.to_numeric(series, errors="coerce") if not pd.api.types.is_datetime64_any_dtype(series) else None
        if numeric is not None and numeric.notna().all() and not pd.api.types.is_bool_dtype(series):
            ordered, is_date = numeric.astype(float), False
        else:
            try:
                ordered = pd.to_datetime(series, errors="raise", format="mixed")
            except (ValueError, TypeError) as exc:
                raise InputError(f"column '{column}' does not parse as numbers or dates (e.g. {series.iloc[0]!r}): "
                                 f"{str(exc).splitlines()[0]}") from None
            is_date = True
        if ordered.nunique() < 2:
            raise InputError(f"column '{column}' has one value; bins need at least two different values")
        if is_date:
            ordered = ordered.dt.tz_localize(None) if ordered.dt.tz is not None else ordered
            ordered = ordered.astype("datetime64[ns]").astype("int64")
        codes, edges = pd.cut(ordered, bins=int(bins), labels=False,
                              retbins=True, include_lowest=True)
        edges[0] = ordered.min()  # pd.cut widens the first edge a little; name the bin by the real start
        edges = pd.to_datetime(edges) if is_date else edges
        names = [(str(edges[i].date()) if is_date else f"{edges[i]:.4g}") for i in range(int(bins))]
        names = [f"{i:02d}:{name}" for i, name in enumerate(names)]  # sortable, unique
        labels = np.array([names[int(c)] for c in codes], dtype=object)
        order = names
        kind = "ordered"
    if len(set(labels)) < 2:
        raise InputError(f"column '{column}' has one value ({labels[0]!r}); comparing groups needs at least two")
    return labels, order, kind


def _topics(space, seed: int, progress) -> tuple[object, np.ndarray]:
    table = space.table
    if "cluster" in table.columns:
        try:
            return space, table["cluster"].to_numpy().astype(np.int64)
        except (TypeError, ValueError):
            raise InputError("column 'cluster' must hold whole numbers (cluster ids); drop it to map afresh") from None
    mapper = CollectionMapper(random_state=seed, display=False, progress=progress).fit(space)
    return mapper.space_, regions_of(mapper, seed)


def _test_topic(row_counts: np.ndarray, totals: np.ndarray, kind: str) -> tuple[float, float]:
    if kind == "ordered":
        return cochran_armitage(row_counts, totals)
    from scipy.stats import chi2_contingency

    table = np.vstack([row_counts, totals - row_counts])
    keep = table.sum(axis=0) > 0
    if row_counts.sum() == 0 or (totals - row_counts).sum() == 0:
        return 0.0, float("nan")
    statistic, p, _, _ = chi2_contingency(table[:, keep], correction=False)
    return float(statistic), float(p)


def compare_groups(space, by: str, *, bins: int | None = None, alpha: float = 0.05, seed: int = 0,
                   progress: bool | None = None) -> GroupComparison:
    """Each topic's share per group (or per time bin), a test per topic, and q-values.

    Parameters
    ----------
    space : EmbeddingSet
        One collection (mapped or not; see the module notes).
    by : str
        The column that defines the groups.
    bins : int, optional
        Cut an ordered column (numbers or dates) into this many equal-width bins and test a
        trend; without it every distinct value is a group.
    alpha : float, default=0.05
    seed : int, default=0
        Seed of the map when the set is not mapped yet.
    progress : bool or None, default=None

    Returns
    -------
    GroupComparison

    Raises
    ------
    InputError
        An empty set, a missing column, a column with one value, a column that does not
        parse as numbers or dates when ``bins`` is given.

    Examples
    --------
    >>> import embedspace as es  # doctest: +SKIP
    >>> es.compare_groups(space, by="label").topics.head()  # doctest: +SKIP
    """
    import pandas as pd

    if not hasattr(space, "vectors") or not hasattr(space, "table"):
        raise InputError(f"space must be an EmbeddingSet (see embedspace.embed), got {type(space).__name__}")
    if len(space) < 2:
        raise InputError(f"comparing groups needs at least 2 documents, got {len(space)}")
    if by not in space.table.columns:
        raise InputError(f"no column '{by}' (columns: {', '.join(map(str, space.table.columns))})")
    labels, order, kind = group_labels(space.table[by].to_numpy(), bins, by)
    mapped, clusters = _topics(space, seed, progress)
    mapped = mapped.assign(cluster=clusters, group=labels)
    counts = pd.crosstab(pd.Series(clusters, name="cluster"), pd.Series(labels, name="group")).reindex(columns=order,
                                                                                                         fill_value=0)
    totals = counts.sum(axis=0).to_numpy(dtype=np.float64)
    names = describe(mapped, n_examples=0).set_index("cluster")
    rows = []
    for cluster, row in counts.iterrows():
        row_counts = row.to_numpy(dtype=np.float64)
        statistic, p = _test_topic(row_counts, totals, kind) if cluster >= 0 else (float("nan"), float("nan"))
        record = {"cluster": int(cluster), "label": names.loc[cluster, "label"], "keywords": names.loc[cluster, "keywords"],
                  "size": int(row_counts.sum()), "statistic": statistic, "p_value": p}
        record.update({f"share:{g}": float(c / t) if t else 0.0 for g, c, t in zip(order, row_counts, totals)})
        rows.append(record)
    topics = pd.DataFrame(rows)
    topics["q_value"] = benjamini_hochberg(topics["p_value"].to_numpy())
    topics["_noise"] = topics["cluster"] < 0
    topics = topics.sort_values(["_noise", "p_value", "cluster"], kind="stable").drop(columns="_noise")
    topics = topics[["cluster", "label", "keywords", "size", "statistic", "p_value", "q_value"]
                    + [f"share:{g}" for g in order]].reset_index(drop=True)
    real = counts[counts.index >= 0]
    lift = (real / np.maximum(real.sum(axis=0), 1)).div(real.sum(axis=1) / max(real.to_numpy().sum(), 1), axis=0)
    top = {g: [int(c) for c in lift[g].sort_values(ascending=False, kind="stable").index[:5]] for g in order}
    metrics = {"by": by, "kind": kind, "bins": bins, "test": "cochran-armitage" if kind == "ordered" else "chi-square",
               "n": len(space), "n_groups": len(order), "n_topics": int((topics["cluster"] >= 0).sum()),
               "n_significant": int((topics["q_value"] < alpha).sum()), "alpha": alpha, "top_topics": top}
    return GroupComparison(topics=topics, groups=list(order), counts=counts, space=mapped, metrics=metrics)
