//! Property tests: write → read round trips, and parsing mutated files never panics.

mod common;

use common::Aligned;
use gguf::{GgmlType, Gguf, GgufWriter, OwnedArray, OwnedValue};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        // Miri runs these too, at a fraction of the speed.
        cases: if cfg!(miri) { 3 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn f32s() -> impl Strategy<Value = f32> {
    use proptest::num::f32::*;
    NORMAL | SUBNORMAL | ZERO | INFINITE | NEGATIVE | POSITIVE
}

fn f64s() -> impl Strategy<Value = f64> {
    use proptest::num::f64::*;
    NORMAL | SUBNORMAL | ZERO | INFINITE | NEGATIVE | POSITIVE
}

fn array() -> impl Strategy<Value = OwnedArray> {
    let n = 0..6usize;
    prop_oneof![
        prop::collection::vec(any::<u8>(), n.clone()).prop_map(OwnedArray::U8),
        prop::collection::vec(any::<i8>(), n.clone()).prop_map(OwnedArray::I8),
        prop::collection::vec(any::<u16>(), n.clone()).prop_map(OwnedArray::U16),
        prop::collection::vec(any::<i16>(), n.clone()).prop_map(OwnedArray::I16),
        prop::collection::vec(any::<u32>(), n.clone()).prop_map(OwnedArray::U32),
        prop::collection::vec(any::<i32>(), n.clone()).prop_map(OwnedArray::I32),
        prop::collection::vec(f32s(), n.clone()).prop_map(OwnedArray::F32),
        prop::collection::vec(any::<bool>(), n.clone()).prop_map(OwnedArray::Bool),
        prop::collection::vec(".{0,8}", n.clone()).prop_map(OwnedArray::Str),
        prop::collection::vec(any::<u64>(), n.clone()).prop_map(OwnedArray::U64),
        prop::collection::vec(any::<i64>(), n.clone()).prop_map(OwnedArray::I64),
        prop::collection::vec(f64s(), n).prop_map(OwnedArray::F64),
    ]
}

fn value() -> impl Strategy<Value = OwnedValue> {
    prop_oneof![
        any::<u8>().prop_map(OwnedValue::U8),
        any::<i8>().prop_map(OwnedValue::I8),
        any::<u16>().prop_map(OwnedValue::U16),
        any::<i16>().prop_map(OwnedValue::I16),
        any::<u32>().prop_map(OwnedValue::U32),
        any::<i32>().prop_map(OwnedValue::I32),
        f32s().prop_map(OwnedValue::F32),
        any::<bool>().prop_map(OwnedValue::Bool),
        ".{0,12}".prop_map(OwnedValue::Str),
        array().prop_map(OwnedValue::Array),
        any::<u64>().prop_map(OwnedValue::U64),
        any::<i64>().prop_map(OwnedValue::I64),
        f64s().prop_map(OwnedValue::F64),
    ]
}

const TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::I8,
    GgmlType::Q4_K,
];

#[derive(Debug, Clone)]
struct TensorSpec {
    ggml_type: GgmlType,
    ne: Vec<u64>,
    seed: u8,
}

fn tensor() -> impl Strategy<Value = TensorSpec> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec(1u64..4, 0..4),
        1u64..3,
        any::<u8>(),
    )
        .prop_map(|(ggml_type, rest, blocks, seed)| {
            let mut ne = vec![blocks * ggml_type.block_size()];
            ne.extend(rest);
            TensorSpec {
                ggml_type,
                ne,
                seed,
            }
        })
}

#[derive(Debug, Clone)]
struct FileSpec {
    alignment: Option<u32>,
    kvs: Vec<(String, OwnedValue)>,
    tensors: Vec<TensorSpec>,
}

fn file() -> impl Strategy<Value = FileSpec> {
    (
        prop::option::of((0u32..9).prop_map(|k| 1 << k)),
        prop::collection::btree_map("[a-z.]{1,10}", value(), 0..8),
        prop::collection::vec(tensor(), 0..5),
    )
        .prop_map(|(alignment, kvs, tensors)| FileSpec {
            alignment,
            kvs: kvs
                .into_iter()
                .filter(|(k, _)| k != "general.alignment")
                .collect(),
            tensors,
        })
}

fn data_of(t: &TensorSpec, i: usize) -> Vec<u8> {
    let n = t.ggml_type.row_bytes_checked(&t.ne).unwrap_or(0) as usize;
    (0..n)
        .map(|j| {
            (j as u8)
                .wrapping_mul(31)
                .wrapping_add(t.seed)
                .wrapping_add(i as u8)
        })
        .collect()
}

fn write(spec: &FileSpec) -> Vec<u8> {
    let mut w = GgufWriter::new(Vec::new());
    if let Some(a) = spec.alignment {
        w.add_u32("general.alignment", a).unwrap();
    }
    for (k, v) in &spec.kvs {
        w.add(k.clone(), v.clone()).unwrap();
    }
    for (i, t) in spec.tensors.iter().enumerate() {
        w.add_tensor(format!("t{i}"), t.ggml_type, &t.ne).unwrap();
    }
    for (i, t) in spec.tensors.iter().enumerate() {
        w.write_tensor_data(&format!("t{i}"), &data_of(t, i))
            .unwrap();
    }
    w.finish().unwrap()
}

/// Reads everything a caller could read; must never panic.
fn touch_everything<B: AsRef<[u8]>>(f: &Gguf<B>) {
    for (k, v) in f.metadata() {
        let _ = format!("{k}{v:?}");
        if let Some(a) = v.as_array() {
            assert_eq!(a.iter().count(), a.len());
        }
    }
    for t in f.tensors() {
        assert_eq!(f.tensor_bytes(t).len() as u64, t.size);
        let _ = f.dequantize(t);
        let _ = f.tensor_f32(t);
        let _ = f.tensor_q8_0(t);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn write_read_round_trip(spec in file()) {
        let bytes = write(&spec);
        let f = Gguf::from_bytes(Aligned::new(&bytes)).unwrap();
        let align = u64::from(spec.alignment.unwrap_or(32));
        prop_assert_eq!(f.alignment(), align);
        prop_assert_eq!(f.data_offset() % align, 0);
        prop_assert_eq!(bytes.len() as u64 % align, 0);
        let mut want = Vec::new();
        if let Some(a) = spec.alignment {
            want.push(("general.alignment".to_owned(), OwnedValue::U32(a)));
        }
        want.extend(spec.kvs.iter().cloned());
        let got: Vec<(String, OwnedValue)> =
            f.metadata().map(|(k, v)| (k.to_owned(), v.to_owned_value())).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(f.tensors().len(), spec.tensors.len());
        for (i, (t, s)) in f.tensors().iter().zip(&spec.tensors).enumerate() {
            prop_assert_eq!(&t.name, &format!("t{i}"));
            prop_assert_eq!(t.ggml_type, s.ggml_type);
            prop_assert_eq!(&t.ne, &s.ne);
            prop_assert_eq!(t.offset % align, 0);
            let data = data_of(s, i);
            prop_assert_eq!(f.tensor_bytes(t), data.as_slice());
        }
        touch_everything(&f);
    }

    #[test]
    fn mutated_files_never_panic(
        spec in file(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..8),
        overwrites in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = write(&spec);
        for (at, bit) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        for (at, b) in overwrites {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        if let Ok(f) = Gguf::from_bytes(bytes.as_slice()) {
            touch_everything(&f);
        }
    }

    #[test]
    fn quantize_q8_0_round_trip_error_is_bounded(xs in prop::collection::vec(-1e4f32..1e4, 32..=128)) {
        let n = xs.len() / 32 * 32;
        let blocks = gguf::quantize_q8_0(&xs[..n]).unwrap();
        for (block, src) in blocks.iter().zip(xs[..n].chunks_exact(32)) {
            let amax = src.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (y, x) in block.dequantize().iter().zip(src) {
                // half a quantisation step plus the f16 rounding of the scale
                prop_assert!((y - x).abs() <= amax / 127.0 * 0.5 + amax * 1e-3 + 1e-6);
            }
        }
    }
}
