"""The numbers: equal to the `gemma-embed` command's, bit for bit, under every option."""

from __future__ import annotations

import numpy as np
import pytest

import ggufembed
from conftest import CORPUS, assert_bits_equal, read_jsonl


def test_embed_equals_cli_npy(model, lines, lines_reference):
    out = model.embed(lines)
    assert out.shape == (len(lines), 768) and out.dtype == np.float32
    assert out.flags["C_CONTIGUOUS"]
    assert_bits_equal(out, lines_reference)


def test_embed_equals_cli_jsonl(model, cli, few_lines, few_lines_file, tmp_path):
    rows = cli(few_lines_file, tmp_path / "lines.jsonl", fmt="jsonl")
    # The command prints each float32 in its shortest form that reads back exactly.
    expected = np.array([row["embedding"] for row in rows], dtype=np.float32)
    assert [row["index"] for row in rows] == list(range(len(few_lines)))
    assert_bits_equal(model.embed(few_lines), expected)


@pytest.mark.parametrize(
    "kwargs, flags",
    [
        (dict(prompt_name="query", dim=256), ["--prompt", "query", "--dim", "256"]),
        (dict(prompt_name="STS", dim=128, normalize=False), ["--prompt", "STS", "--dim", "128", "--no-normalize"]),
        (dict(prompt="custom prefix: ", batch_size=7), ["--prompt-text", "custom prefix: ", "--batch-size", "7"]),
    ],
)
def test_options_equal_cli(model, cli, few_lines, few_lines_file, tmp_path, kwargs, flags):
    expected = cli(few_lines_file, tmp_path / "out.npy", *flags)
    assert_bits_equal(model.embed(few_lines, **kwargs), expected)


def test_batch_size_and_threads_do_not_change_bits(model_path, model, lines, lines_reference):
    one_thread = ggufembed.Model(model_path, threads=1)
    assert_bits_equal(one_thread.embed(lines[:40], batch_size=1), lines_reference[:40])
    assert_bits_equal(model.embed(lines[:40], batch_size=1000), lines_reference[:40])


def test_one_text_and_empty(model, lines, lines_reference):
    one = model.embed(lines[3])
    assert one.shape == (768,)
    assert_bits_equal(one[None, :], lines_reference[3:4])
    empty = model.embed([])
    assert empty.shape == (0, 768) and empty.dtype == np.float32
    assert model.embed([], dim=128).shape == (0, 128)
    assert model.embed("", dim=512).shape == (512,)


def test_any_iterable_of_str(model, lines, lines_reference):
    texts = lines[:5]
    for container in (tuple(texts), np.array(texts), np.array(texts, dtype=object), iter(texts)):
        assert_bits_equal(model.embed(container), lines_reference[:5])


def test_rows_are_normalised_and_owned(model, lines):
    out = model.embed(lines[:4], dim=256)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    out[0, 0] = 42.0  # the caller owns a writable array
    assert out[0, 0] == 42.0


def test_encode_follows_sentence_transformers(model, lines, lines_reference):
    assert_bits_equal(model.encode(lines[:8]), lines_reference[:8])
    assert model.encode(lines[0]).shape == (768,)
    assert model.get_sentence_embedding_dimension() == 768 == model.dim
    # truncate_dim cuts the normalised vector, and renormalises only when asked (as ST does).
    cut = model.encode(lines[:8], truncate_dim=256)
    assert_bits_equal(cut, lines_reference[:8, :256])
    renormalised = model.encode(lines[:8], truncate_dim=256, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(renormalised, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(renormalised, model.embed(lines[:8], dim=256), atol=1e-6)
    assert_bits_equal(model.encode_query(lines[:3]), model.embed(lines[:3], prompt_name="query"))
    assert_bits_equal(model.encode_document(lines[:3]), model.embed(lines[:3], prompt_name="document"))


def test_tokenize(model):
    assert model.tokenize("Hello, world!") == [2, 9259, 236764, 1902, 236888, 1]
    both = model.tokenize(["Hello, world!", ""])
    assert both == [[2, 9259, 236764, 1902, 236888, 1], [2, 1]]
    with_prompt = model.tokenize("Hello, world!", prompt_name="query")
    assert with_prompt == model.tokenize("task: search result | query: Hello, world!")
    # Cut to the context like the CLI (the Ray test checks the embedding of this document).
    docs = read_jsonl(CORPUS / "docs.jsonl")
    longest = model.tokenize(max(docs, key=len))
    assert len(longest) == 2048 and longest[0] == 2 and longest[-1] == 1


def test_info(model, model_path):
    info = model.info
    assert info["path"] == str(model_path)
    assert info["architecture"] == "gemma-embedding"
    assert info["weight_type"] == "q8_0"
    assert info["dimensions"] == [768, 512, 256, 128] == model.dimensions
    assert info["context_length"] == 2048
    assert info["threads"] == 2 == model.threads
    assert info["backend"] == ggufembed.backend()
    assert info["prompts"]["query"] == "task: search result | query: " == model.prompts["query"]
    assert "threads=2" in repr(model)
