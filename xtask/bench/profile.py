#!/usr/bin/env python3
"""Where the time goes: profiles a command with `perf record` and sums the samples by category.

    python3 xtask/bench/profile.py -- target/release/gemma-embed bench --tokens 128 --threads 1 --iters 3
    python3 xtask/bench/profile.py --data perf.data          # summarise an existing recording

Each sample's stack is walked from the leaf up; the first frame that names a known part of the
forward pass (attention, the int8 GEMM, activation quantization, ...) takes the sample. Library
calls made on behalf of a kernel (`fmaf`, `roundf`, `tanhf`, `memset`, ...) are charged to that
kernel, so `fmaf` called from attention counts as attention; attention, the tokenizer and the
model load own everything beneath them (the attention kernel's f32 tile GEMM is attention). Needs `perf` (`apt-get install
linux-perf`); uses the `cpu-clock` software event, which works where hardware counters do not.
Stacks come from DWARF unwinding (`--call-graph dwarf`), so the release profile's line tables are
enough.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

# Categories that own everything that runs beneath them: a sample with any frame matching one of
# these belongs to it (the attention kernel calls the f32 tile GEMM, the loader calls the GGUF
# reader, ...).
OWNERS = [
    ("attention", r"attention"),
    ("model load (GGUF parse, checks, tokenizer build)", r"gemma_runtime::gemma::load|gemma_runtime::model::open|Model::open|gguf::"),
    ("tokenizer", r"spm_tokenizer"),
]
# The others: the first frame from the leaf up that matches one, in this order.
CATEGORIES = [
    ("matmul Q8_0 × int8 activations (AVX-512 VNNI GEMM)", r"gemm_int8"),
    ("activation quantize + pack", r"quantize_portable|quantize_activations|quantize_pack|quantize_block|avx512vnni::pack"),
    ("matmul with f32 activations / float weights (Dense)", r"matmul_rows16|matmul_float|scalar::matmul_q8_0|matmul_f32|matmul_f16|matmul_bf16"),
    ("GeGLU", r"geglu|gelu"),
    ("RMSNorm", r"rms_norm"),
    ("RoPE", r"rope"),
    ("softmax", r"softmax"),
    ("pooling / normalize", r"mean_pool|l2_normalize"),
    ("residual add / scale", r"add_assign|Kernels::scale|scale_mul"),
    ("thread pool (rayon)", r"rayon|crossbeam"),
]
# Frames that are helpers of whatever called them.
HELPERS = re.compile(
    r"^(fmaf|roundf|tanhf|__tanhf|__expm1f|expf|__expf|__expf_fma|__cos_fma|__sin_fma|"
    r"compiler_builtins|core::|alloc::|std::|__mem|_int_malloc|malloc|free|cfree|realloc|"
    r"__libc|\[unknown\]|0x)"
)


def classify(frames):
    """frames: symbols from the leaf up."""
    for name, rx in OWNERS:
        if any(re.search(rx, sym) for sym in frames):
            return name
    for sym in frames:
        for name, rx in CATEGORIES:
            if re.search(rx, sym):
                return name
    leaf = frames[0] if frames else "?"
    if leaf.startswith("[k]") or "kernel" in leaf:
        return "kernel (page faults, scheduling)"
    return "other: " + leaf[:60]


def read_samples(data):
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stacks, cur = [], None
    for line in out.splitlines():
        if not line.strip():
            if cur is not None:
                stacks.append(cur)
            cur = None
            continue
        if cur is None:
            cur = []  # the header line of a sample
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        sym = parts[1]
        sym = re.sub(r"\s+\(\S+\)$", "", sym)  # drop the dso
        if "[kernel.kallsyms]" in parts[1]:
            sym = "[k]" + sym
        cur.append(sym)
    if cur is not None:
        stacks.append(cur)
    return stacks


def summarise(stacks, top):
    by_cat = collections.Counter()
    by_leaf = collections.Counter()
    for frames in stacks:
        useful = [f for f in frames if not HELPERS.match(f)] or frames
        by_cat[classify(useful)] += 1
        by_leaf[frames[0] if frames else "?"] += 1
    total = sum(by_cat.values()) or 1
    print(f"{total} samples\n")
    print("| category | share |")
    print("|---|---:|")
    for name, n in by_cat.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    print(f"\n| leaf symbol (top {top}) | share |")
    print("|---|---:|")
    for name, n in by_leaf.most_common(top):
        print(f"| `{name[:90]}` | {100 * n / total:.1f} % |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="summarise this perf.data instead of recording")
    p.add_argument("--freq", type=int, default=499, help="samples per second (default 499)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("command", nargs="*")
    args = p.parse_args()
    data = args.data
    if data is None:
        if not args.command:
            p.error("give a command after --, or --data")
        fd, data = tempfile.mkstemp(suffix=".perf.data")
        os.close(fd)
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.freq),
               "--call-graph", "dwarf,16384", "-o", data, "--"] + args.command
        print("$ " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    summarise(read_samples(data), args.top)


if __name__ == "__main__":
    main()
