"""Writes gguf_py_reference.bin (a GGUF file; not *.gguf, which the repository ignores) with llama.cpp's gguf-py (package `gguf` 0.19.0, numpy 2.4.6).

The Rust test `gguf_py_compat.rs` builds the same file with GgufWriter and quantize_q8_0 from the
same formula-generated inputs and requires identical bytes.

    python -m venv venv && venv/bin/pip install gguf==0.19.0 numpy==2.4.6
    venv/bin/python make_gguf_py_reference.py
"""
import os

import numpy as np
import gguf
from gguf.quants import quantize


def values(n: int, seed: int) -> np.ndarray:
    i = np.arange(n, dtype=np.int64)
    k = ((i * 7919 + seed) % 2001).astype(np.float32)
    return k / np.float32(100) - np.float32(10)


def halves() -> np.ndarray:
    # amax 127 -> d = 1, id = 1: exercises round-half-away-from-zero on exact .5 values
    v = np.array([127.0] + [j + 0.5 for j in range(-16, 15)], dtype=np.float32)
    return v


out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_py_reference.bin")
w = gguf.GGUFWriter(out, "demo")
w.add_uint8("k.u8", 200)
w.add_int8("k.i8", -100)
w.add_uint16("k.u16", 60000)
w.add_int16("k.i16", -30000)
w.add_uint32("k.u32", 4000000000)
w.add_int32("k.i32", -2000000000)
w.add_float32("k.f32", 0.1)
w.add_bool("k.bool", True)
w.add_string("k.str", "héllo ▁world")
w.add_uint64("k.u64", 2**63 + 5)
w.add_int64("k.i64", -(2**62))
w.add_float64("k.f64", 1e-300)
w.add_array("k.arr.str", ["<pad>", "", "▁a", "日本"])
w.add_array("k.arr.f32", [1.5, -2.25, 3.0])
w.add_array("k.arr.i32", [1, -2, 3])

f32 = values(3 * 5, 1).reshape(5, 3)          # ne = [3, 5]
f16 = values(2 * 7, 2).astype(np.float16)     # ne = [14]
q8src = np.concatenate([halves(), values(32 * 5, 3), np.zeros(32, dtype=np.float32)]).reshape(7, 32)
q8 = quantize(q8src, gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("t.f32", f32)
w.add_tensor("t.f16", f16)
w.add_tensor("t.q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(out, os.path.getsize(out))
