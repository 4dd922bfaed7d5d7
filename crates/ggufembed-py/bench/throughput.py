#!/usr/bin/env python3
"""Throughput of the Python path against the command line, and of Ray's two layouts.

    python throughput.py [--corpus testdata/corpus/docs.jsonl] [--rounds 2] [--cli PATH]

Over one corpus (JSONL of JSON strings), in rounds that interleave the runs so that a change in
the machine's load hits all of them alike:

* ``cli``: ``gemma-embed embed --stats --threads 2`` (its own "tokens/s": embedding only, load
  excluded);
* ``python``: ``ggufembed.Model(threads=2).embed(texts)`` in one process, timed around the call
  (load excluded, like the CLI);
* ``ray 2x1`` and ``ray 1x2``: ``examples/ray_embed.py`` with 2 actors x 1 thread and 1 actor x 2
  threads on a local Ray cluster, timed from the start of the dataset's execution to the end of
  the Parquet write (actor start and model load included; ``ray.init`` excluded).

Tokens are the model's tokens, special tokens included (what the CLI counts). Prints a Markdown
table of tokens/s per run and the median of each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ggufembed

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def run_cli(cli: str, corpus: Path, out: Path) -> float:
    cmd = [cli, "embed", "--stats", "--threads", "2", "--input", str(corpus), "--input-format", "jsonl",
           "--format", "npy", "--output", str(out)]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    match = re.search(r"^tokens/s\s+([0-9.]+)", err, re.M)
    if not match:
        raise RuntimeError(f"no tokens/s in the output of {cmd}:\n{err}")
    return float(match.group(1))


def run_python(texts: list[str], tokens: int) -> float:
    model = ggufembed.Model(threads=2)
    start = time.perf_counter()
    model.embed(texts)
    return tokens / (time.perf_counter() - start)


def run_ray(corpus: Path, out: Path, actors: int, threads: int, tokens: int) -> float:
    cmd = [sys.executable, str(HERE.parent / "examples" / "ray_embed.py"), "--input", str(corpus),
           "--output", str(out), "--actors", str(actors), "--threads", str(threads)]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    match = re.search(r"in ([0-9.]+) s \(", err)
    if not match:
        raise RuntimeError(f"no time in the output of {cmd}:\n{err}")
    return tokens / float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "testdata" / "corpus" / "docs.jsonl")
    parser.add_argument("--rounds", type=int, default=2)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    parser.add_argument("--cli", default=str(target / "release" / "gemma-embed"))
    args = parser.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    tokens = sum(len(ids) for ids in ggufembed.Model(threads=2).tokenize(texts))
    print(f"{len(texts)} texts, {tokens} tokens, backend {ggufembed.backend()}", file=sys.stderr)

    results: dict[str, list[float]] = {"cli": [], "python": [], "ray 2x1": [], "ray 1x2": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            print(f"round {r + 1}: load {os.getloadavg()[0]:.1f}", file=sys.stderr)
            results["cli"].append(run_cli(args.cli, args.corpus, Path(tmp) / f"cli{r}.npy"))
            results["python"].append(run_python(texts, tokens))
            results["ray 2x1"].append(run_ray(args.corpus, Path(tmp) / f"ray21-{r}", 2, 1, tokens))
            results["ray 1x2"].append(run_ray(args.corpus, Path(tmp) / f"ray12-{r}", 1, 2, tokens))
            print({k: round(v[-1], 1) for k, v in results.items()}, file=sys.stderr)

    print("| run | " + " | ".join(f"round {r + 1}" for r in range(args.rounds)) + " | median |")
    print("|---|" + "---|" * (args.rounds + 1))
    for name, values in results.items():
        cells = " | ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {cells} | {statistics.median(values):.1f} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
