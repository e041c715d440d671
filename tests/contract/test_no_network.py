"""The main CLI verbs with every internet socket refused: nothing phones home or fetches a model.

A ``sitecustomize.py``, first on ``PYTHONPATH`` of a fresh Python process, replaces
``socket.socket.connect`` / ``connect_ex`` / ``sendto``, ``socket.create_connection`` and
``socket.getaddrinfo`` before anything else is imported: an attempt on an internet address
(IPv4 or IPv6, loopback included) raises ``OSError`` and is appended to a log file; local
(``AF_UNIX``) sockets still work. The Hugging Face offline switches are cleared
(``HF_HUB_OFFLINE=0`` and friends), so the verbs pass because they never try, not because
a library was told not to. Every verb must succeed and the log must stay empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import assert_success, cli_env, private_cache, run_many, sts_sentences

pytestmark = pytest.mark.slow  # subprocesses, kills, Ray or a browser: CI runs it, the fast lane skips it

_GUARD = r'''
"""Refuse internet sockets in this process and log every attempt (test_no_network)."""
import socket as _socket

_LOG = {log!r}
_real_connect, _real_connect_ex, _real_sendto = _socket.socket.connect, _socket.socket.connect_ex, _socket.socket.sendto


def _refuse(what, address):
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(f"{{what}} {{address!r}}\n")
    raise OSError(101, f"network blocked by test_no_network: {{what}} {{address!r}}")


def _internet(sock):
    return sock.family in (_socket.AF_INET, _socket.AF_INET6)


def _connect(self, address):
    if _internet(self):
        _refuse("connect", address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    if _internet(self):
        _refuse("connect_ex", address)
    return _real_connect_ex(self, address)


def _sendto(self, data, *args):
    if _internet(self):
        _refuse("sendto", args[-1] if args else None)
    return _real_sendto(self, data, *args)


def _create_connection(address, *args, **kwargs):
    _refuse("create_connection", address)


def _getaddrinfo(host, *args, **kwargs):
    _refuse("getaddrinfo", host)


_socket.socket.connect = _connect
_socket.socket.connect_ex = _connect_ex
_socket.socket.sendto = _sendto
_socket.create_connection = _create_connection
_socket.getaddrinfo = _getaddrinfo
'''

OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture
def guarded_env(tmp_path):
    """Environment whose Python processes refuse internet sockets; returns (env, log path)."""
    site = tmp_path / "guard"
    site.mkdir()
    log = tmp_path / "connections.log"
    (site / "sitecustomize.py").write_text(_GUARD.format(log=str(log)), encoding="utf-8")
    env = cli_env(private_cache(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    for name in OFFLINE_SWITCHES:
        env[name] = "0"
    return env, log


def test_the_guard_refuses_and_logs_internet_sockets(guarded_env):
    env, log = guarded_env
    probe = (
        "import socket\n"
        "for attempt in (lambda: socket.create_connection(('example.com', 80), timeout=1),\n"
        "                lambda: socket.socket().connect(('127.0.0.1', 9)),\n"
        "                lambda: socket.getaddrinfo('huggingface.co', 443)):\n"
        "    try:\n"
        "        attempt()\n"
        "    except OSError as exc:\n"
        "        assert 'blocked' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('not blocked')\n"
        "a, b = socket.socketpair(socket.AF_UNIX)\n"
        "a.sendall(b'x'); assert b.recv(1) == b'x'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(log.read_text().splitlines()) == 3


def test_main_verbs_run_with_sockets_blocked(guarded_env, tmp_path):
    env, log = guarded_env
    sentences = sts_sentences(120, skip=3000)
    (tmp_path / "docs.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    (tmp_path / "labelled.csv").write_text(
        "text,label\n" + "".join(f"\"{s.replace(chr(34), '')}\",{'ab'[i % 2]}\n" for i, s in enumerate(sentences[:60])),
        encoding="utf-8")
    (tmp_path / "words.txt").write_text("\n".join(
        "king queen man woman cat dog car truck apple pear paris france tokyo japan".split()) + "\n", encoding="utf-8")
    (tmp_path / "sts.csv").write_text(
        "sentence1,sentence2,score\nA man plays guitar.,A man is playing a guitar.,4.8\n"
        "A cat sleeps.,Stocks fell sharply.,0.1\nA dog runs.,A puppy is running.,4.0\n", encoding="utf-8")
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "title": "", "text": s}) + "\n" for i, s in enumerate(sentences[:20])), encoding="utf-8")
    (beir / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": sentences[i]}) + "\n" for i in range(3)), encoding="utf-8")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(3)), encoding="utf-8")
    t = tmp_path
    commands = [
        ["embed", t / "docs.txt", "-o", t / "docs.set", "--quiet"],
        ["info", t / "docs.set", "--json"],
        ["index", t / "docs.set", "-o", t / "docs.index", "--quiet"],
        ["search", t / "docs.index", "a man is playing music", "-k", "3", "--json"],
        ["search", t / "docs.index", "a dog in the snow", "--mode", "hybrid", "--json"],
        ["map", t / "docs.set", "-o", t / "docs.map", "--quiet", "--json"],
        ["relate", "neighbors", "cat", "--vocab", t / "words.txt", "-k", "3", "--json"],
        ["relate", "similarity", "a cat", "a dog", "--json"],
        ["relate", "analogy", "man", "king", "woman", "--vocab", t / "words.txt", "--json"],
        ["eval", "sts", t / "sts.csv", "--json"],
        ["eval", "clustering", t / "labelled.csv", "--label-col", "label", "--json"],
        ["eval", "retrieval", beir, "--json"],
        ["vae", "train", t / "docs.txt", "-o", t / "tiny.vae", "--epochs", "1", "--hidden-dim", "16",
         "--latent-dim", "2", "--quiet"],
        ["vae", "sample", t / "tiny.vae", "-n", "2"],
        ["vae", "interpolate", t / "tiny.vae", sentences[0], sentences[1], "--steps", "2"],
        ["cache", "info", "--json"],
    ]
    results = run_many(commands, env=env, timeout=300)
    for result in results:
        assert_success(result["status"], result["out"], result["err"]), result["argv"]
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"connections were attempted:\n{attempts}"
    assert json.loads(results[3]["out"])["queries"][0]["results"]
    assert json.loads(results[9]["out"])["n"] == 3
