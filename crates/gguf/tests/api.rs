//! Accessor, writer-misuse, type-table and quantiser error cases.

mod common;

use common::Aligned;
use gguf::{
    quantize_q8_0, quantize_q8_0_into, BlockQ8_0, GgmlType, Gguf, GgufError, GgufWriter,
    OwnedArray, Value, ValueType, ALL_GGML_TYPES,
};

#[test]
fn ggml_type_ids_round_trip_and_sizes_match_ggml() {
    let mut known = 0;
    for id in 0..=100u32 {
        match GgmlType::try_from(id) {
            Ok(t) => {
                known += 1;
                assert_eq!(t.id(), id);
                assert!(ALL_GGML_TYPES.contains(&t));
            }
            Err(GgufError::RemovedGgmlType { id: i, .. }) => {
                assert_eq!(i, id);
                assert!([4, 5, 31, 32, 33, 36, 37, 38].contains(&id));
            }
            Err(GgufError::UnknownGgmlType { id: i }) => {
                assert_eq!(i, id);
                assert!(id > 41);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(known, ALL_GGML_TYPES.len());
    // (block size, bytes per block) from ggml.c's type_traits
    for (t, bs, ts) in [
        (GgmlType::F32, 1, 4),
        (GgmlType::F16, 1, 2),
        (GgmlType::BF16, 1, 2),
        (GgmlType::Q4_0, 32, 18),
        (GgmlType::Q8_0, 32, 34),
        (GgmlType::Q4_K, 256, 144),
        (GgmlType::Q6_K, 256, 210),
        (GgmlType::IQ4_XS, 256, 136),
        (GgmlType::MXFP4, 32, 17),
        (GgmlType::Q1_0, 128, 18),
    ] {
        assert_eq!((t.block_size(), t.type_size()), (bs, ts), "{t}");
    }
    assert_eq!(GgmlType::Q8_0.to_string(), "Q8_0");
    assert_eq!(GgmlType::Q4_K.name(), "q4_K");
}

#[test]
fn typed_getters_distinguish_missing_and_wrong_type() {
    let mut w = GgufWriter::new(Vec::new());
    w.add_u32("u", 1).unwrap();
    w.add("i8", -1i8).unwrap();
    w.add("u16", 9u16).unwrap();
    w.add_str_array("s", ["a", "b"]).unwrap();
    w.add("f64s", vec![1.0f64, 2.0]).unwrap();
    let f = Gguf::from_bytes(w.finish().unwrap()).unwrap();
    match f.get_str("u") {
        Err(GgufError::WrongType {
            key,
            expected: "string",
            found: "u32",
        }) => assert_eq!(key, "u"),
        other => panic!("{other:?}"),
    }
    match f.get_f32_array("s") {
        Err(GgufError::WrongType {
            expected: "array of f32",
            found: "array of string",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match f.get_str_array("nope") {
        Err(GgufError::MissingKey { key }) => assert_eq!(key, "nope"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.architecture(),
        Err(GgufError::MissingKey { .. })
    ));
    assert_eq!(f.get_uint("u16").unwrap(), 9);
    assert!(matches!(f.get_uint("i8"), Err(GgufError::WrongType { .. })));
    assert_eq!(f.get_array_of::<f64>("f64s").unwrap().to_vec(), [1.0, 2.0]);
    let s = f.get_str_array("s").unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.collect::<Vec<_>>(), ["a", "b"]);
    let a = f.get_array("s").unwrap();
    assert_eq!(a.get(1), Some(Value::Str("b")));
    assert_eq!(a.get(2), None);
    assert_eq!(a.elem_type(), ValueType::Str);
}

#[test]
fn typed_tensor_views_check_type_and_alignment() {
    let mut w = GgufWriter::new(Vec::new());
    w.add_tensor("f", GgmlType::F32, &[2]).unwrap();
    w.add_tensor("q", GgmlType::Q8_0, &[32]).unwrap();
    w.write_tensor_f32("f", &[1.0, 2.0]).unwrap();
    let q = quantize_q8_0(&[127.0; 32]).unwrap(); // d = 1 exactly
    w.write_tensor_q8_0("q", &q).unwrap();
    let bytes = w.finish().unwrap();

    let f = Gguf::from_bytes(Aligned::new(&bytes)).unwrap();
    let t = f.require_tensor("f").unwrap();
    assert_eq!(f.tensor_f32(t).unwrap(), [1.0, 2.0]);
    match f.tensor_q8_0(t) {
        Err(GgufError::TensorTypeMismatch {
            expected: GgmlType::Q8_0,
            found: GgmlType::F32,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.tensor_f16(t),
        Err(GgufError::TensorTypeMismatch { .. })
    ));

    // The same file one byte off an 8-aligned address: views fail cleanly, dequantize works.
    let f = Gguf::from_bytes(Aligned::with_skip(&bytes, 1)).unwrap();
    let t = f.require_tensor("f").unwrap();
    assert!(matches!(
        f.tensor_f32(t),
        Err(GgufError::Misaligned { align: 4, .. })
    ));
    assert_eq!(f.dequantize(t).unwrap(), [1.0, 2.0]);
    let t = f.require_tensor("q").unwrap();
    assert!(matches!(
        f.tensor_q8_0(t),
        Err(GgufError::Misaligned { align: 2, .. })
    ));
    assert_eq!(f.dequantize(t).unwrap(), [127.0; 32]);
}

#[test]
fn dequantize_reports_unsupported_types() {
    let mut w = GgufWriter::new(Vec::new());
    w.add_tensor("k", GgmlType::Q4_K, &[256]).unwrap();
    w.write_tensor_data("k", &[0; 144]).unwrap();
    let f = Gguf::from_bytes(w.finish().unwrap()).unwrap();
    let t = f.require_tensor("k").unwrap();
    assert!(matches!(
        f.dequantize(t),
        Err(GgufError::UnsupportedDequantize {
            ggml_type: GgmlType::Q4_K,
            ..
        })
    ));
    let mut out = Vec::new();
    assert!(matches!(
        gguf::dequantize_row(GgmlType::Q8_0, &[0; 35], &mut out),
        Err(GgufError::DataLength {
            len: 35,
            type_size: 34,
            ..
        })
    ));
}

#[test]
fn writer_misuse_is_a_typed_error() {
    let mut w = GgufWriter::new(Vec::new());
    w.add_u32("a", 1).unwrap();
    assert!(matches!(
        w.add_u32("a", 2),
        Err(GgufError::DuplicateKey { .. })
    ));
    assert!(matches!(
        w.add_u32("general.alignment", 0),
        Err(GgufError::InvalidAlignment { .. })
    ));
    assert!(matches!(
        w.add_u32("general.alignment", 24),
        Err(GgufError::InvalidAlignment { .. })
    ));
    assert!(matches!(
        w.add_u64("general.alignment", 32),
        Err(GgufError::AlignmentWrongType { found: "u64" })
    ));
    assert!(matches!(
        w.add_tensor("x".repeat(64), GgmlType::F32, &[1]),
        Err(GgufError::TensorNameTooLong { .. })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::F32, &[1; 5]),
        Err(GgufError::TooManyDims { .. })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::Q8_0, &[31]),
        Err(GgufError::NotBlockMultiple { .. })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::F32, &[u64::MAX, 2]),
        Err(GgufError::ShapeOverflow { .. })
    ));
    w.add_tensor("t1", GgmlType::F32, &[2]).unwrap();
    assert!(matches!(
        w.add_tensor("t1", GgmlType::F32, &[2]),
        Err(GgufError::DuplicateTensor { .. })
    ));
    w.add_tensor("t2", GgmlType::F32, &[1]).unwrap();
    assert!(matches!(
        w.write_tensor_f32("t2", &[1.0]),
        Err(GgufError::TensorOrder { expected: Some(e), .. }) if e == "t1"
    ));
    assert!(matches!(
        w.write_tensor_f32("t1", &[1.0]),
        Err(GgufError::TensorDataLength {
            expected: 8,
            found: 4,
            ..
        })
    ));
    w.write_tensor_f32("t1", &[1.0, 2.0]).unwrap();
    assert!(matches!(
        w.add_u32("b", 1),
        Err(GgufError::WriterSealed { .. })
    ));
    assert!(matches!(
        w.add_tensor("t3", GgmlType::F32, &[1]),
        Err(GgufError::WriterSealed { .. })
    ));
    match w.finish() {
        Err(GgufError::MissingTensorData { name }) => assert_eq!(name, "t2"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        GgufWriter::with_version(Vec::new(), 1),
        Err(GgufError::WriterVersion { version: 1 })
    ));
}

#[test]
fn writer_version_2() {
    let mut w = GgufWriter::with_version(Vec::new(), 2).unwrap();
    w.add("e", OwnedArray::Bool(vec![])).unwrap();
    let f = Gguf::from_bytes(w.finish().unwrap()).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.get_array("e").unwrap().len(), 0);
}

#[test]
fn quantize_q8_0_errors_and_streaming_form() {
    assert!(matches!(
        quantize_q8_0(&[0.0; 33]),
        Err(GgufError::QuantizeLength { len: 33, .. })
    ));
    let mut src = [1.0f32; 64];
    src[40] = f32::NAN;
    assert!(matches!(
        quantize_q8_0(&src),
        Err(GgufError::NonFinite { index: 40, .. })
    ));
    src[40] = f32::NEG_INFINITY;
    assert!(matches!(
        quantize_q8_0(&src),
        Err(GgufError::NonFinite { index: 40, .. })
    ));
    let src: Vec<f32> = (0..64).map(|i| i as f32 * 0.25 - 3.0).collect();
    let zero = BlockQ8_0 {
        d: gguf::half::f16::ZERO,
        qs: [0; 32],
    };
    let mut out = [zero; 2];
    quantize_q8_0_into(&src, &mut out).unwrap();
    assert_eq!(out.as_slice(), quantize_q8_0(&src).unwrap().as_slice());
    let mut short = [zero; 1];
    assert!(matches!(
        quantize_q8_0_into(&src, &mut short),
        Err(GgufError::QuantizeLength { .. })
    ));
    // all zeros: d = 0, id = 0
    assert_eq!(quantize_q8_0(&[0.0; 32]).unwrap(), [zero]);
}

#[test]
#[cfg_attr(miri, ignore)] // memory-maps a file
fn open_maps_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    let mut w = GgufWriter::new(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    w.add_str("general.architecture", "x").unwrap();
    w.add_tensor("t", GgmlType::F32, &[3]).unwrap();
    w.write_tensor_f32("t", &[1.0, 2.0, 3.0]).unwrap();
    w.finish().unwrap();
    let f = Gguf::open(&path).unwrap();
    assert_eq!(f.architecture().unwrap(), "x");
    assert_eq!(
        f.tensor_f32(f.require_tensor("t").unwrap()).unwrap(),
        [1.0, 2.0, 3.0]
    );
    match Gguf::open(dir.path().join("missing.gguf")) {
        Err(GgufError::Open { path: p, .. }) => assert!(p.ends_with("missing.gguf")),
        other => panic!("{other:?}"),
    }
}
