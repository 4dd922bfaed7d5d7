"""Hugging Face `tokenizers` throughput on a corpus, for `cargo xtask bench-wordpiece`.

    RAYON_NUM_THREADS=1 python wordpiece_bench.py TOKENIZER_JSON MAX_LENGTH SECONDS CORPUS.jsonl...

Times `Tokenizer.encode_batch` over all texts (truncation to MAX_LENGTH, no padding) repeatedly for
at least SECONDS after one warm-up pass, and prints one JSON line: tokenizers version, passes,
best and median seconds per pass, bytes, and the load time of `Tokenizer.from_file`.
"""

import json
import statistics
import sys
import time

import tokenizers
from tokenizers import Tokenizer


def main():
    tok_json, max_length, seconds, *corpora = sys.argv[1:]
    texts = []
    for path in corpora:
        with open(path, encoding="utf-8") as f:
            texts.extend(json.loads(line) for line in f if line.strip())
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(tok_json)
    load = time.perf_counter() - t0
    tok.no_padding()
    tok.enable_truncation(int(max_length))
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts))
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < float(seconds) or len(times) < 3:
        t0 = time.perf_counter()
        tok.encode_batch(texts)
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "tokenizers": tokenizers.__version__,
        "passes": len(times),
        "best_s": min(times),
        "median_s": statistics.median(times),
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "tokens": tokens,
        "load_s": load,
    }))


if __name__ == "__main__":
    main()
