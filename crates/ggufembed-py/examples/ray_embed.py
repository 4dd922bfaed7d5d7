#!/usr/bin/env python3
"""Embed a corpus with ggufembed on a Ray cluster (Ray Data).

    python ray_embed.py --input corpus.jsonl --output embeddings/ [--model PATH]
                        [--actors N] [--threads T] [--prompt-name NAME] [--dim D]

The input is JSONL (one JSON string a line) or Parquet (a ``text`` column). ``map_batches`` runs
a pool of ``--actors`` actors; each opens one model with ``--threads`` threads and reserves as many
CPUs, so Ray never puts more model threads on a node than it has cores. Batches arrive as numpy
arrays (``batch_format="numpy"``). The output directory gets Parquet files with the columns
``text`` (string) and ``embedding`` (fixed-size list of float32), in input order.

Without ``--address`` (or ``RAY_ADDRESS``) the script starts a local Ray cluster with one logical
CPU per model thread and one more for Ray Data's own tasks. On a real cluster, leave a CPU free
there too (``actors x threads`` below the cluster's CPUs): Ray Data lists and reads the input
files in tasks that need one. Every node needs the ``ggufembed`` wheel and the model file (in
each node's model cache, or at the ``--model`` path on every node).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pyarrow as pa
import ray


class Embedder:
    """One model per actor: opened once, then called with batch after batch."""

    def __init__(self, model: str | None, threads: int, prompt_name: str | None, dim: int | None):
        import ggufembed

        self.model = ggufembed.Model(model, threads=threads)
        self.prompt_name = prompt_name
        self.dim = dim

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        texts = batch["text"]
        vectors = self.model.embed(texts, prompt_name=self.prompt_name, dim=self.dim)
        # One flat float32 buffer seen as fixed-size lists: no copy per value.
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        return pa.table({"text": pa.array(texts.tolist(), pa.string()), "embedding": embedding})


def decode_json_lines(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``read_text`` yields raw lines; each line of the corpus is one JSON string."""
    texts = [json.loads(line) for line in batch["text"]]
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"a line of the corpus is {type(text).__name__}, not a JSON string: {batch['text'][i]!r}")
    return {"text": np.array(texts, dtype=object)}


# Reading, decoding and writing reserve no CPU: they are light next to the model, whose actors
# hold the cores. (Ray Data's file listing still takes one: see the local cluster in main.)
IO_CPUS = 0


def read_corpus(path: str) -> ray.data.Dataset:
    """A ``text`` column from Parquet (a ``.parquet`` file or a directory of them) or JSONL."""
    if path.endswith(".parquet") or os.path.isdir(path):
        return ray.data.read_parquet(path, columns=["text"], num_cpus=IO_CPUS)
    lines = ray.data.read_text(path, num_cpus=IO_CPUS)
    return lines.map_batches(decode_json_lines, batch_format="numpy", num_cpus=IO_CPUS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="JSONL (one JSON string a line) or Parquet (a `text` column)")
    parser.add_argument("--output", required=True, help="directory for the Parquet output")
    parser.add_argument("--model", default=None, help="GGUF file [default: the cached EmbeddingGemma Q8_0]")
    parser.add_argument("--actors", type=int, default=2, help="model actors [default: 2]")
    parser.add_argument("--threads", type=int, default=1, help="threads (and CPUs) per actor [default: 1]")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per batch [default: 32]")
    parser.add_argument("--prompt-name", default=None, help="task prompt, e.g. document or query")
    parser.add_argument("--dim", type=int, default=None, help="output size (768, 512, 256, 128)")
    parser.add_argument("--address", default=None, help="Ray cluster to join [default: start a local one]")
    args = parser.parse_args(argv)

    if args.address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        # A local cluster: one logical CPU per model thread, and one for Ray Data's own tasks
        # (listing, reading and writing files), which would otherwise wait for a free CPU forever.
        ray.init(num_cpus=args.actors * args.threads + 1, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False

    start = time.perf_counter()
    dataset = read_corpus(args.input).map_batches(
        Embedder,
        fn_constructor_kwargs={
            "model": args.model,
            "threads": args.threads,
            "prompt_name": args.prompt_name,
            "dim": args.dim,
        },
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_cpus=args.threads,
        batch_size=args.batch_size,
        batch_format="numpy",
    )
    dataset.write_parquet(args.output, ray_remote_args={"num_cpus": IO_CPUS})
    elapsed = time.perf_counter() - start
    print(f"embedded the corpus into {args.output} in {elapsed:.2f} s "
          f"({args.actors} actors x {args.threads} threads)", file=sys.stderr)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
