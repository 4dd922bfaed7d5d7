"""Several Python threads on one model; the interpreter lock is released; pickling."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time

import numpy as np

import ggufembed
from conftest import assert_bits_equal


def test_threads_at_once(model, lines, lines_reference):
    n = 4
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def work(k: int) -> None:
        texts = lines[k:80:n]
        barrier.wait()  # all four call the model at the same time
        results[k] = model.embed(texts, batch_size=5)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(n):
        assert results[k] is not None, f"thread {k} failed"
        assert_bits_equal(results[k], lines_reference[k:80:n])


def test_lock_released_while_embedding(model, lines):
    """Another Python thread runs while the model works: with the lock held through the call,
    the main thread would not wake up until it returned."""
    done = threading.Event()
    ticks = 0

    def embed():
        model.embed(lines[:40], batch_size=40)  # one call into the model
        done.set()

    worker = threading.Thread(target=embed)
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        ticks += 1
    worker.join()
    assert ticks >= 20, ticks


def test_pickle_round_trip(model, model_path, lines, lines_reference):
    copy = pickle.loads(pickle.dumps(model))
    assert isinstance(copy, ggufembed.Model)
    assert copy.path == model.path and copy.threads == 2
    assert_bits_equal(copy.embed(lines[:10]), lines_reference[:10])
    with_precision = ggufembed.Model(model_path, threads=1, precision="f32")
    copy = pickle.loads(pickle.dumps(with_precision))
    assert copy.info["precision"] == "f32" and copy.threads == 1
    assert_bits_equal(copy.embed(lines[:3]), with_precision.embed(lines[:3]))


def test_default_model_pickles_as_default(model_path):
    default = ggufembed.Model(threads=1)
    assert pickle.loads(pickle.dumps(default)).path == default.path
    assert default.__reduce__()[1] == (None, 1, None)


def _embed_in_worker(model, texts):
    return model.embed(texts)


def test_model_sent_to_a_worker_process(model, lines, lines_reference):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        out = pool.apply(_embed_in_worker, (model, lines[:6]))
    assert isinstance(out, np.ndarray)
    assert_bits_equal(out, lines_reference[:6])
