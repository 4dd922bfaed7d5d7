"""Bad input raises a Python exception with the library's message; the interpreter survives."""

from __future__ import annotations

import pytest

import ggufembed


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m.embed("x", dim=300), ggufembed.InvalidInputError, "output dimension 300 is not supported by this model; choose one of 768, 512, 256, 128"),
        (lambda m: m.embed("x", dim=0), ggufembed.InvalidInputError, "dim must be a positive integer, got 0"),
        (lambda m: m.embed("x", prompt_name="nope"), ggufembed.InvalidInputError, 'the model has no task prompt named "nope"'),
        (lambda m: m.embed([], prompt_name="nope"), ggufembed.InvalidInputError, 'the model has no task prompt named "nope"'),
        (lambda m: m.embed("x", prompt_name="query", prompt="p: "), ggufembed.InvalidInputError, "not both"),
        (lambda m: m.embed("x", batch_size=0), ggufembed.InvalidInputError, "batch_size must be a positive integer, got 0"),
        (lambda m: m.embed(["ok", "a " * 3000], truncate=False), ggufembed.InvalidInputError, "text 1 encodes to 3003 tokens"),
        (lambda m: m.embed(["ok"] * 5 + ["a " * 3000], batch_size=2, truncate=False), ggufembed.InvalidInputError, "text 5 encodes to"),
        (lambda m: m.tokenize("a " * 3000, truncate=False), ggufembed.InvalidInputError, "encodes to 3003 tokens"),
        (lambda m: m.embed(["a", 1]), TypeError, "texts[1] is int, not str"),
        (lambda m: m.embed(["a", None]), TypeError, "texts[1] is NoneType, not str"),
        (lambda m: m.embed(b"bytes"), TypeError, "decode the bytes first"),
        (lambda m: m.embed(3.5), TypeError, "texts must be a str or a sequence of str, not float"),
        (lambda m: m.embed(["\ud800"]), UnicodeEncodeError, "surrogates not allowed"),
        (lambda m: m.embed("x", dim=-1), ggufembed.InvalidInputError, "dim must be a positive integer, got -1"),
        (lambda m: m.embed("x", dim=2**70), OverflowError, ""),
    ],
)
def test_bad_input_raises(model, call, error, message):
    with pytest.raises(error) as info:
        call(model)
    assert message in str(info.value)
    # The model still works afterwards.
    assert model.embed("still fine").shape == (768,)


def test_inputs_that_are_valid(model):
    # NUL characters, special-token text, emoji, whitespace only: all valid text.
    out = model.embed(["a\0b", "<start_of_turn>user", "🙂" * 50, "   \n\t"])
    assert out.shape == (4, 768)


def test_error_classes():
    assert issubclass(ggufembed.ModelNotFoundError, FileNotFoundError)
    assert issubclass(ggufembed.ModelNotFoundError, ggufembed.Error)
    assert issubclass(ggufembed.InvalidInputError, ValueError)
    assert issubclass(ggufembed.InvalidInputError, ggufembed.Error)


def test_missing_model_says_how_to_get_one(tmp_path):
    with pytest.raises(ggufembed.ModelNotFoundError) as info:
        ggufembed.Model(tmp_path / "missing.gguf")
    message = str(info.value)
    assert "missing.gguf not found" in message
    assert "cargo xtask fetch-model" in message and "GGUFEMBED_MODEL" in message


def test_malformed_model_files(tmp_path, model_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(ggufembed.Error, match="GGUF|gguf|magic"):
        ggufembed.Model(garbage)
    # The real header and metadata, cut off before the tensor data.
    truncated = tmp_path / "truncated.gguf"
    with open(model_path, "rb") as f:
        truncated.write_bytes(f.read(8 << 20))
    with pytest.raises(ggufembed.Error):
        ggufembed.Model(truncated)
    with pytest.raises(ggufembed.Error):
        ggufembed.Model(tmp_path)  # a directory
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ggufembed.Error):
        ggufembed.Model(empty)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(threads=0), "threads must be a positive integer, got 0"),
        (dict(threads=-2), "threads must be a positive integer, got -2"),
        (dict(precision="f64"), 'unknown precision "f64"; choose int8, mixed or f32'),
    ],
)
def test_bad_model_arguments(model_path, kwargs, message):
    with pytest.raises(ggufembed.InvalidInputError, match=message):
        ggufembed.Model(model_path, **kwargs)
