"""The map pipeline on one small real collection, shared by every test of this module.

The collection: 4 well-separated groups of the shipped 20 Newsgroups test split, 80 posts
each (subject and the first 600 characters of the body, so embedding stays quick), mapped once
with seed 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GROUPS = ("rec.sport.hockey", "sci.space", "soc.religion.christian", "comp.graphics")
PER_GROUP = 80


@pytest.fixture(scope="module")
def small_space(encoder):
    import embedspace as es

    docs = es.read("corpus:20newsgroups")
    docs = pd.concat([docs[docs["label"] == g].head(PER_GROUP) for g in GROUPS], ignore_index=True)
    from helpers import short_posts

    docs = short_posts(docs)
    return es.embed(docs[["text", "label"]], encoder=encoder, progress=False)


@pytest.fixture(scope="module")
def mapper(small_space):
    from embedspace.mapping import CollectionMapper

    return CollectionMapper(random_state=0, progress=False).fit(small_space)


@pytest.fixture(scope="module")
def map_dir(mapper, tmp_path_factory):
    from embedspace.mapping import write_map

    out = tmp_path_factory.mktemp("maps") / "news-map"
    result = write_map(mapper.space_, out, label_col="label", mapper=mapper, title="four groups <b>&</b>")
    return out, result


def test_map_adds_the_columns_with_their_types_and_ranges(mapper, small_space):
    table = mapper.space_.table
    assert list(table.columns[:2]) == ["text", "label"]
    for column in ("x", "y", "cluster", "probability", "outlier_score"):
        assert column in table.columns
    assert table["cluster"].dtype == np.int64 and table["x"].dtype == np.float32
    assert np.isfinite(table[["x", "y"]].to_numpy()).all()
    assert table["probability"].between(0, 1).all() and table["outlier_score"].between(0, 1).all()
    assert (table.loc[table["cluster"] < 0, "probability"] == 0).all()
    sizes = table.loc[table["cluster"] >= 0, "cluster"].value_counts().sort_index().to_numpy()
    assert (np.diff(sizes) <= 0).all(), "cluster 0 is the largest, then 1, ..."
    assert len(small_space.table.columns) == 2, "the input set is not changed"


def test_four_clear_groups_are_recovered(mapper):
    from embedspace.mapping.clustering import clustering_scores

    table = mapper.space_.table
    scores = clustering_scores(table["cluster"], table["label"])
    assert scores["nmi"] >= 0.6, scores
    assert scores["noise_fraction"] <= 0.25, scores
    assert 3 <= scores["n_clusters"] <= 8, scores


def test_the_neighbour_graph_is_shared_and_exact(mapper, small_space):
    graph = mapper.knn_
    assert graph.exact and graph.indices.shape == (len(small_space), 15)
    assert (graph.indices[:, 0] == np.arange(len(small_space))).all()
    sims = small_space.vectors @ small_space.vectors.T
    brute = np.argsort(-sims, axis=1)[:, 1:6]
    agree = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(graph.indices[:, 1:6], brute)])
    assert agree >= 0.99


def test_k_gives_exactly_k_clusters_and_no_outliers(small_space):
    import embedspace as es
    from embedspace.mapping.clustering import clustering_scores

    mapped = es.map(small_space, k=4, seed=0)
    clusters = mapped.table["cluster"]
    assert sorted(clusters.unique()) == [0, 1, 2, 3]
    assert clustering_scores(clusters, mapped.table["label"])["v_measure"] >= 0.6


def test_assign_outliers_leaves_none(small_space, mapper):
    from embedspace.mapping.clustering import assign_outliers

    labels = mapper.clusterer_.labels_
    assigned = assign_outliers(mapper.cluster_embedding_, labels)
    assert (assigned >= 0).all()
    assert (assigned[labels >= 0] == labels[labels >= 0]).all()


def test_map_directory_has_every_file_and_a_verified_manifest(map_dir, small_space):
    from embedspace.store import read_manifest

    out, result = map_dir
    manifest = read_manifest(out, "embedspace.map", 1)
    assert set(manifest["files"]) == {"documents.parquet", "clusters.csv", "topics.csv", "map.png", "map.html",
                                      "report.html", "metrics.json"}
    documents = pd.read_parquet(out / "documents.parquet")
    assert list(documents.columns[:7]) == ["row", "x", "y", "cluster", "probability", "outlier_score", "text"]
    assert "label" in documents.columns and len(documents) == len(small_space)
    clusters = pd.read_csv(out / "clusters.csv")
    assert {"cluster", "size", "label", "keywords", "examples"} <= set(clusters.columns)
    assert clusters["size"].sum() == len(small_space)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ari", "nmi", "v_measure", "noise_fraction", "n_clusters", "min_cluster_size", "timings"):
        assert key in metrics
    png = (out / "map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_map_html_is_self_contained_and_escapes_the_title(map_dir):
    out, _ = map_dir
    page = (out / "map.html").read_text(encoding="utf-8")
    assert "four groups &lt;b&gt;&amp;&lt;/b&gt;" in page and "<b>&</b>" not in page
    for remote in ("http://", "https://", "//cdn", "<link", "src="):
        assert remote not in page
    start = page.index('<script type="application/json" id="map-data">') + len('<script type="application/json" id="map-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data["n"] == len(data["points"]["x"]) == 320


def test_cluster_keywords_name_the_groups(map_dir):
    _, result = map_dir
    clusters = result["clusters"]
    words = " ".join(" ".join(k) for k in clusters["keywords"])
    for expected in ("hockey", "space", "god"):
        assert expected in words, words
    real = clusters[clusters["cluster"] >= 0]
    assert all(len(ex) == 3 for ex in real["examples"]) and real["label"].str.len().gt(0).all()


def test_same_seed_same_clusters_in_another_process(mapper, small_space, tmp_path):
    """A second process maps the saved set with the same seed: identical columns, and UMAP
    loads its compiled functions from numba's cache instead of compiling them again."""
    small_space.save(tmp_path / "set")
    code = r"""
import json, sys
import embedspace as es
from numba.core.dispatcher import Dispatcher
mapped = es.map(es.load(sys.argv[1]), seed=0)
import umap.umap_, umap.layouts
hits = misses = 0
for f in (umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths,
          umap.layouts._nb_optimize_layout_euclidean_single_epoch):
    hits += sum(f.stats.cache_hits.values()); misses += sum(f.stats.cache_misses.values())
print(json.dumps({"cluster": mapped.table["cluster"].tolist(), "x": mapped.table["x"].tolist(),
                  "levels": {c: mapped.table[c].tolist() for c in mapped.table.columns if c.startswith("cluster_l")},
                  "hits": hits, "misses": misses}))
"""
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "set")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other["cluster"] == mapper.space_.table["cluster"].tolist()
    mine = {c: mapper.space_.table[c].tolist() for c in mapper.space_.table.columns if c.startswith("cluster_l")}
    assert other["levels"] == mine and "cluster_l0" in mine  # the same topic tree in another process
    assert np.array_equal(np.array(other["x"], dtype=np.float32), mapper.space_.table["x"].to_numpy())
    assert other["misses"] == 0 and other["hits"] >= 3, other


def test_numba_cache_lives_in_the_embedspace_cache(mapper):
    from embedspace._fs import cache_dir

    cached = list((cache_dir() / "numba").rglob("*.nbi"))
    assert any("layouts" in p.name for p in cached) and any("umap_" in str(p.parent) for p in cached)


def test_stability_reports_mean_pairwise_ari(small_space):
    from embedspace.mapping import clustering_stability

    report = clustering_stability(small_space, seeds=(0, 1))
    assert report["seeds"] == [0, 1] and len(report["pairwise_ari"]) == 1
    assert 0.5 <= report["mean_ari"] <= 1.0


def test_cli_map_set_with_json_and_stability(small_space, tmp_path, cli):
    small_space.save(tmp_path / "set")
    status, out, err = cli("map", tmp_path / "set", "-o", tmp_path / "m", "--label-col", "label", "--k", "4",
                           "--stability", "2", "--json")
    assert status == 0, err
    summary = json.loads(out)
    for key in ("ari", "nmi", "v_measure", "noise_fraction", "n_clusters", "output", "clusters", "stability"):
        assert key in summary
    assert summary["n_clusters"] == 4 and isinstance(summary["stability"]["mean_ari"], float)
    assert (tmp_path / "m" / "map.png").is_file()
    status, _, err = cli("map", tmp_path / "set", "-o", tmp_path / "m")
    assert status == 2 and err.startswith("error: ") and "--overwrite" in err


def test_cli_eval_clustering_keys(small_space, tmp_path, cli):
    small_space.save(tmp_path / "set")
    status, out, err = cli("eval", "clustering", tmp_path / "set", "--label-col", "label", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert {"ari", "nmi", "v_measure", "noise_fraction", "n_clusters"} <= set(result)
    assert result["nmi"] >= 0.6


def test_example_script_runs(tmp_path, small_space):
    small_space.save(tmp_path / "set")
    script = Path(__file__).resolve().parents[2] / "scripts" / "example_map.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "set"), "-o", str(tmp_path / "example")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "example" / "map.html").is_file() and "cluster" in done.stdout


def test_demo_indexes_maps_searches_and_says_where_to_look(small_space, tmp_path):
    from embedspace.mapping.demo import EXAMPLE_QUERIES, run_demo

    result = run_demo(tmp_path / "demo", space=small_space)
    assert result["n"] == len(small_space) and result["map"]["n_clusters"] == len(
        [c for c in result["clusters"] if c["cluster"] >= 0])
    assert [q["query"] for q in result["queries"]] == list(EXAMPLE_QUERIES)
    first = result["queries"][0]["results"]
    assert len(first) == 3 and first[0]["label"] == "comp.graphics" and "cluster_label" in first[0]
    for name in ("map_html", "map_png", "clusters_csv"):
        assert Path(result["files"][name]).is_file()
    for folder in ("space", "index", "map"):
        assert (tmp_path / "demo" / folder / "manifest.json").is_file()


def test_demo_never_replaces_a_folder_it_did_not_write(small_space, tmp_path):
    from embedspace.mapping.demo import run_demo
    from embedspace.errors import OutputExistsError

    (tmp_path / "demo" / "map").mkdir(parents=True)
    (tmp_path / "demo" / "map" / "mine.txt").write_text("my own map")
    with pytest.raises(OutputExistsError, match="not an embedspace result"):
        run_demo(tmp_path / "demo", space=small_space)
    assert (tmp_path / "demo" / "map" / "mine.txt").read_text() == "my own map"
    assert not (tmp_path / "demo" / "space").exists()


def test_cli_map_max_tokens_sets_the_window_for_text_and_is_refused_for_a_set(small_space, tmp_path, cli):
    """Text is embedded with the model's window (or --max-tokens); a set keeps its own vectors."""
    from embedspace.encoding import default_backend

    small_space.table[["text", "label"]].head(40).to_csv(tmp_path / "docs.csv", index=False)
    for extra, window in (([], 256), (["--max-tokens", "32"], 32)):
        out = tmp_path / f"m{window}"
        status, _, err = cli("map", tmp_path / "docs.csv", "-o", out, "--quiet", *extra)
        assert status == 0, err
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["model"]["max_seq_length"] == window
        assert manifest["model"]["backend"] == default_backend()  # "auto" resolved as for embed
    small_space.save(tmp_path / "set")
    status, _, err = cli("map", tmp_path / "set", "-o", tmp_path / "m", "--max-tokens", "64")
    assert status == 2 and err.startswith("error: ") and "already embedded" in err


def test_make_mapper_refuses_a_ray_worker_count_without_ray(small_space):
    from embedspace.errors import InputError
    from embedspace.mapping import make_mapper

    with pytest.raises(InputError, match="needs engine='ray'"):
        make_mapper(small_space, workers=2)


def test_map_of_a_file_is_the_map_of_the_set_embed_writes(small_space, tmp_path, cli):
    """One vector per text per model (issue 31, item 2): 'map FILE' and 'map SET' (from 'embed FILE') agree.

    Before, 'map FILE' embedded with another backend than 'embed' (openvino-int8-bf16 on a
    CPU with native bf16), embedding everything twice and giving another map for the seed.
    """
    small_space.table[["text", "label"]].to_json(tmp_path / "docs.jsonl", orient="records", lines=True)
    status, _, err = cli("embed", tmp_path / "docs.jsonl", "-o", tmp_path / "docs.set", "--quiet")
    assert status == 0, err
    for name, source in (("from-file", tmp_path / "docs.jsonl"), ("from-set", tmp_path / "docs.set")):
        status, _, err = cli("map", source, "-o", tmp_path / name, "--seed", "1", "--quiet")
        assert status == 0, err
    from_file = pd.read_parquet(tmp_path / "from-file" / "documents.parquet")
    from_set = pd.read_parquet(tmp_path / "from-set" / "documents.parquet")
    for column in [c for c in from_file.columns if c.startswith("cluster") or c in ("x", "y")]:
        np.testing.assert_array_equal(from_file[column].to_numpy(), from_set[column].to_numpy(), err_msg=column)
    manifests = [json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("from-file", "from-set")]
    assert manifests[0]["model"]["backend"] == manifests[1]["model"]["backend"]


def test_representative_documents_are_distinct(small_space):
    """Issue 31, item 5: a collection holding an article several times showed it as several representatives."""
    import embedspace as es

    table = small_space.table.copy()
    central = es.describe(es.map(small_space, seed=0)).iloc[0]["example_rows"][0]
    copies = pd.concat([table, table.iloc[[central] * 4]], ignore_index=True)
    vectors = np.vstack([small_space.vectors, np.repeat(small_space.vectors[[central]], 4, axis=0)])
    doubled = es.EmbeddingSet(vectors, copies, small_space.model)
    described = es.describe(es.map(doubled, seed=0))
    for examples in described["examples"]:
        folded = [" ".join(t.split()).casefold() for t in examples]
        assert len(set(folded)) == len(folded)
