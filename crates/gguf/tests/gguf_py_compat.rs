//! GgufWriter and quantize_q8_0 reproduce llama.cpp's gguf-py byte for byte.
//!
//! `tests/data/gguf_py_reference.bin` was written by gguf-py's `GGUFWriter` and `quants.quantize`
//! (script `tests/data/make_gguf_py_reference.py`); this test builds the same file from the same
//! formula-generated inputs.

use gguf::half::f16;
use gguf::{quantize_q8_0, GgmlType, Gguf, GgufError, GgufWriter, OwnedValue};

const REFERENCE: &[u8] = include_bytes!("data/gguf_py_reference.bin");

/// `((i * 7919 + seed) % 2001) / 100 - 10` in f32, as the script computes it with numpy.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed) % 2001) as f32 / 100.0 - 10.0)
        .collect()
}

fn halves() -> Vec<f32> {
    let mut v = vec![127.0f32];
    v.extend((-16..15).map(|j| j as f32 + 0.5));
    v
}

fn build() -> Result<Vec<u8>, GgufError> {
    let mut w = GgufWriter::new(Vec::new());
    w.add_str("general.architecture", "demo")?;
    w.add("k.u8", 200u8)?;
    w.add("k.i8", -100i8)?;
    w.add("k.u16", 60000u16)?;
    w.add("k.i16", -30000i16)?;
    w.add("k.u32", 4_000_000_000u32)?;
    w.add("k.i32", -2_000_000_000i32)?;
    w.add("k.f32", 0.1f32)?;
    w.add("k.bool", true)?;
    w.add("k.str", "héllo ▁world")?;
    w.add("k.u64", (1u64 << 63) + 5)?;
    w.add("k.i64", -(1i64 << 62))?;
    w.add("k.f64", OwnedValue::F64(1e-300))?;
    w.add_str_array("k.arr.str", ["<pad>", "", "▁a", "日本"])?;
    w.add_f32_array("k.arr.f32", vec![1.5, -2.25, 3.0])?;
    w.add_i32_array("k.arr.i32", vec![1, -2, 3])?;

    let f32s = values(15, 1);
    let f16s: Vec<f16> = values(14, 2).into_iter().map(f16::from_f32).collect();
    let mut q8src = halves();
    q8src.extend(values(32 * 5, 3));
    q8src.extend([0.0; 32]);
    let q8 = quantize_q8_0(&q8src)?;

    w.add_tensor("t.f32", GgmlType::F32, &[3, 5])?;
    w.add_tensor("t.f16", GgmlType::F16, &[14])?;
    w.add_tensor("t.q8_0", GgmlType::Q8_0, &[32, 7])?;
    w.write_tensor_f32("t.f32", &f32s)?;
    let f16_bytes: Vec<u8> = f16s.iter().flat_map(|h| h.to_le_bytes()).collect();
    w.write_tensor_data("t.f16", &f16_bytes)?;
    w.write_tensor_q8_0("t.q8_0", &q8)?;
    w.finish()
}

#[test]
fn writer_output_is_byte_identical_to_gguf_py() -> Result<(), GgufError> {
    let ours = build()?;
    assert_eq!(ours.len(), REFERENCE.len());
    if let Some(i) = ours.iter().zip(REFERENCE).position(|(a, b)| a != b) {
        panic!("first difference at byte {i}");
    }
    Ok(())
}

#[test]
fn reader_reads_gguf_py_file() -> Result<(), GgufError> {
    let f = Gguf::from_bytes(REFERENCE)?;
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture()?, "demo");
    assert_eq!(f.metadata().count(), 16);
    assert_eq!(f.get_u32("k.u32")?, 4_000_000_000);
    assert_eq!(f.get_str("k.str")?, "héllo ▁world");
    assert_eq!(
        f.get_str_array("k.arr.str")?.collect::<Vec<_>>(),
        ["<pad>", "", "▁a", "日本"]
    );
    let t = f.require_tensor("t.q8_0")?;
    assert_eq!(
        (t.ggml_type, t.ne.as_slice(), t.size),
        (GgmlType::Q8_0, &[32u64, 7][..], 7 * 34)
    );
    // The halves block: d = 1, q = round-half-away-from-zero(x).
    let deq = f.dequantize(t)?;
    assert_eq!(deq[0], 127.0);
    assert_eq!(&deq[1..5], &[-16.0, -15.0, -14.0, -13.0]); // -15.5 -> -16, ...
    assert_eq!((deq[16], deq[17]), (-1.0, 1.0)); // -0.5 -> -1, 0.5 -> 1
    assert_eq!(&deq[28..32], &[12.0, 13.0, 14.0, 15.0]);
    Ok(())
}
