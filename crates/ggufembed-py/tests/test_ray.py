"""examples/ray_embed.py on a local Ray cluster: every output row equals the CLI's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import CORPUS, EXAMPLES, assert_bits_equal, read_jsonl


def run_example(model_path: Path, corpus: Path, out: Path, *flags: str) -> pa.Table:
    cmd = [sys.executable, str(EXAMPLES / "ray_embed.py"), "--input", str(corpus), "--output", str(out),
           "--model", str(model_path), "--actors", "2", "--threads", "1", *flags]
    subprocess.run(cmd, check=True, timeout=1800)
    return pq.read_table(out)


def check_rows(table: pa.Table, texts: list[str], expected: np.ndarray) -> None:
    assert table.column_names == ["text", "embedding"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), expected.shape[1])
    got_texts = table.column("text").to_pylist()
    # Every text once (as many times as in the input), and in input order.
    assert got_texts == texts
    embedding = table.column("embedding").combine_chunks()
    values = embedding.flatten().to_numpy().reshape(len(embedding), -1)
    assert_bits_equal(values, expected)


def test_ray_over_the_document_corpus(model_path, docs_reference, tmp_path):
    table = run_example(model_path, CORPUS / "docs.jsonl", tmp_path / "out", "--prompt-name", "document")
    check_rows(table, read_jsonl(CORPUS / "docs.jsonl"), docs_reference)


def test_ray_from_parquet_with_dim(model_path, cli, few_lines, few_lines_file, tmp_path):
    texts = few_lines
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"text": texts, "other": list(range(len(texts)))}), corpus)
    table = run_example(model_path, corpus, tmp_path / "out", "--dim", "256", "--batch-size", "8")
    expected = cli(few_lines_file, tmp_path / "cli.npy", "--dim", "256")
    check_rows(table, texts, expected)
