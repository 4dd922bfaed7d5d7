#!/usr/bin/env python3
"""llama.cpp side of `cargo xtask bench`: times llama-cpp-python on the same GGUF file.

Every mode loads the model with the settings llama.cpp's embedding examples use for this model
(`embedding=True, n_ctx=2048, n_batch=2048, n_ubatch=2048, n_threads=T`) and prints JSON lines
on standard output, one per measurement; diagnostics go to standard error.

Modes:
  warm      --tokens 4,32,128 --threads T --iters K[,K...]
            one text of exactly N tokens (<bos> and <eos> included, as llama.cpp counts them),
            untimed warm-up calls (at least one, for at least 0.3 s), then K timed `Llama.embed` calls (one K for all N, or one
            per N); like
            `llama-bench -embd 1 -p N -n 0 -t T`.
  once      --threads T --text TEXT
            load and embed one text once (for the whole-process cold start, which the caller
            times from outside, Python's start-up and `import llama_cpp` included).
  file      --threads T --input FILE.jsonl
            load and embed every text of a JSON-lines file (one string, or an object with a
            "text" field, per line) in one `Llama.embed` call, as llama.cpp batches them.
  tokenize  --corpus FILE.jsonl [FILE.jsonl ...] --iters K
            tokenizer throughput over the texts (one thread: llama.cpp tokenizes on the calling
            thread) and the time to load the vocabulary alone (`vocab_only=True`).

Each JSON object also has the process's own peak RSS so far (`maxrss_kb`, from
`resource.getrusage(RUSAGE_SELF)`) for callers that cannot use /usr/bin/time.
"""

import argparse
import json
import resource
import statistics
import sys
import time


def log(msg):
    print(f"llama_bench: {msg}", file=sys.stderr, flush=True)


def maxrss_kb():
    # Linux reports ru_maxrss in kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def emit(obj):
    obj["maxrss_kb"] = maxrss_kb()
    print(json.dumps(obj), flush=True)


def load(model, threads, **extra):
    """Loads the model; returns (llm, milliseconds)."""
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(
        model_path=model,
        embedding=True,
        n_ctx=2048,
        n_batch=2048,
        n_ubatch=2048,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        **extra,
    )
    return llm, (time.perf_counter() - start) * 1e3


def count_tokens(llm, text):
    # What `Llama.embed` does with each input: tokenize with the vocabulary's special tokens
    # added (<bos>, and <eos> when the file says add_eos_token).
    return len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))


def text_of_tokens(llm, n):
    """A text that llama.cpp tokenizes to exactly n tokens, specials included."""
    overhead = count_tokens(llm, "")
    words = max(n - overhead, 0)
    for _ in range(16):
        text = " ".join(["hello"] * words)
        got = count_tokens(llm, text)
        if got == n:
            return text
        words += n - got
        if words < 0:
            break
    raise SystemExit(f"llama_bench: cannot build a text of exactly {n} tokens")


def mode_warm(args):
    llm, load_ms = load(args.model, args.threads)
    iters = args.iters * len(args.tokens) if len(args.iters) == 1 else args.iters
    if len(iters) != len(args.tokens):
        raise SystemExit("llama_bench: --iters takes one count, or one per --tokens value")
    for n, k in zip(args.tokens, iters):
        text = text_of_tokens(llm, n)
        # Warm-up: at least one call and at least 0.3 s, like `gemma-embed bench`.
        warm_start = time.perf_counter()
        _, count = llm.embed(text, return_count=True)
        while time.perf_counter() - warm_start < 0.3:
            llm.embed(text)
        if count != n:
            raise SystemExit(f"llama_bench: embed saw {count} tokens, expected {n}")
        times = []
        for _ in range(k):
            start = time.perf_counter()
            llm.embed(text)
            times.append(time.perf_counter() - start)
        mean = statistics.fmean(times)
        emit(
            {
                "tokens": n,
                "threads": args.threads,
                "ms_per_text": round(mean * 1e3, 3),
                "tokens_per_s": round(n / mean, 3),
                "ms_min": round(min(times) * 1e3, 3),
                "iters": k,
                "load_ms": round(load_ms, 3),
            }
        )


def mode_once(args):
    start = time.perf_counter()
    llm, load_ms = load(args.model, args.threads)
    t0 = time.perf_counter()
    vec, count = llm.embed(args.text, return_count=True)
    embed_ms = (time.perf_counter() - t0) * 1e3
    emit(
        {
            "tokens": count,
            "dim": len(vec),
            "threads": args.threads,
            "load_ms": round(load_ms, 3),
            "embed_ms": round(embed_ms, 3),
            "in_process_ms": round((time.perf_counter() - start) * 1e3, 3),
        }
    )


def read_texts(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            value = json.loads(line)
            texts.append(value["text"] if isinstance(value, dict) else value)
    return texts


def mode_file(args):
    texts = read_texts(args.input)
    llm, load_ms = load(args.model, args.threads)
    t0 = time.perf_counter()
    vecs, count = llm.embed(texts, return_count=True)
    embed_ms = (time.perf_counter() - t0) * 1e3
    if len(vecs) != len(texts):
        raise SystemExit(f"llama_bench: {len(vecs)} vectors for {len(texts)} texts")
    emit(
        {
            "texts": len(texts),
            "tokens": count,
            "threads": args.threads,
            "load_ms": round(load_ms, 3),
            "embed_ms": round(embed_ms, 3),
        }
    )


def mode_tokenize(args):
    from llama_cpp import Llama

    texts = [t for path in args.corpus for t in read_texts(path)]
    data = [t.encode("utf-8") for t in texts]
    n_bytes = sum(len(b) for b in data)
    builds = []
    for _ in range(3):
        start = time.perf_counter()
        llm = Llama(model_path=args.model, vocab_only=True, verbose=False)
        builds.append((time.perf_counter() - start) * 1e3)
    times = []
    tokens = 0
    for _ in range(args.iters):
        tokens = 0
        start = time.perf_counter()
        for b in data:
            tokens += len(llm.tokenize(b, add_bos=True, special=False))
        times.append(time.perf_counter() - start)
    best = min(times)
    emit(
        {
            "texts": len(texts),
            "bytes": n_bytes,
            "tokens": tokens,
            "ms": round(best * 1e3, 3),
            "mb_per_s": round(n_bytes / best / 1e6, 3),
            "vocab_load_ms": round(min(builds), 3),
            "iters": args.iters,
        }
    )


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    def common(p, threads=True):
        p.add_argument("--model", required=True)
        if threads:
            p.add_argument("--threads", type=int, required=True)

    p = sub.add_parser("warm")
    common(p)
    p.add_argument(
        "--tokens",
        required=True,
        type=int_list,
    )
    p.add_argument("--iters", required=True, type=int_list)
    p = sub.add_parser("once")
    common(p)
    p.add_argument("--text", required=True)
    p = sub.add_parser("file")
    common(p)
    p.add_argument("--input", required=True)
    p = sub.add_parser("tokenize")
    common(p, threads=False)
    p.add_argument("--corpus", nargs="+", required=True)
    p.add_argument("--iters", type=int, default=5)

    args = parser.parse_args()
    {"warm": mode_warm, "once": mode_once, "file": mode_file, "tokenize": mode_tokenize}[
        args.mode
    ](args)


if __name__ == "__main__":
    main()
