"""Shared fixtures: the installed package, the real model, the `gemma-embed` binary, the corpus.

The tests run against the installed wheel (never the source tree) and compare with the
`gemma-embed` command: `$GEMMA_EMBED`, else `gemma-embed` in `$CARGO_TARGET_DIR/release` or the
repository's `target/release`. The model is `ggufembed.default_model_path()` (the cached
EmbeddingGemma Q8_0 unless `$GGUFEMBED_MODEL` says otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ggufembed

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / "testdata" / "corpus"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Short texts: the first lines of the line corpus, and fewer of them for the runs with options.
LINES_USED = 200
FEW_LINES = 40


def read_jsonl(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _find_cli() -> Path:
    if os.environ.get("GEMMA_EMBED"):
        return Path(os.environ["GEMMA_EMBED"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "release" / "gemma-embed"


@pytest.fixture(scope="session", autouse=True)
def installed_package() -> None:
    """The package under test is the installed wheel, not python/ in the source tree."""
    source = Path(__file__).resolve().parents[1] / "python"
    assert source not in Path(ggufembed.__file__).resolve().parents, ggufembed.__file__


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = Path(ggufembed.default_model_path())
    if not path.is_file():
        pytest.fail(f"no model at {path}: run `cargo xtask fetch-model` first")
    return path


@pytest.fixture(scope="session")
def cli(model_path: Path):
    """Runs `gemma-embed embed` over a JSONL file; returns the embeddings (npy) as an array."""
    exe = _find_cli()
    if not exe.is_file():
        pytest.fail(f"no gemma-embed binary at {exe}: `cargo build --release -p gemma-embed-cli` or set GEMMA_EMBED")

    def run(corpus: Path, out: Path, *flags: str, fmt: str = "npy") -> np.ndarray | list:
        cmd = [str(exe), "embed", "--model", str(model_path), "--input", str(corpus),
               "--input-format", "jsonl", "--format", fmt, "--output", str(out), *flags]
        subprocess.run(cmd, check=True)
        if fmt == "npy":
            return np.load(out)
        with open(out, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    return run


@pytest.fixture(scope="session")
def lines() -> list[str]:
    return read_jsonl(CORPUS / "lines.jsonl")[:LINES_USED]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps(text) + "\n")
    return path


@pytest.fixture(scope="session")
def lines_file(lines: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "lines.jsonl", lines)


@pytest.fixture(scope="session")
def few_lines(lines: list[str]) -> list[str]:
    return lines[:FEW_LINES]


@pytest.fixture(scope="session")
def few_lines_file(few_lines: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "few-lines.jsonl", few_lines)


@pytest.fixture(scope="session")
def lines_reference(cli, lines_file: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The CLI's embeddings of `lines` (default options)."""
    return cli(lines_file, tmp_path_factory.mktemp("cli") / "lines.npy")


@pytest.fixture(scope="session")
def docs_reference(cli, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The CLI's embeddings of the document corpus with the document prompt."""
    return cli(CORPUS / "docs.jsonl", tmp_path_factory.mktemp("cli") / "docs.npy", "--prompt", "document")


@pytest.fixture(scope="session")
def model(model_path: Path) -> ggufembed.Model:
    return ggufembed.Model(model_path, threads=2)


def assert_bits_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same shape, float32, and the same bits in every value."""
    assert actual.dtype == np.float32 and expected.dtype == np.float32
    assert actual.shape == expected.shape
    differ = np.flatnonzero((actual.view(np.uint32) != expected.view(np.uint32)).any(axis=-1))
    assert differ.size == 0, f"rows {differ[:10].tolist()} differ (of {len(differ)})"
