//! Write → read round trips through `GgufWriter` and `Gguf`.

use gguf::{quantize_q8_0, GgmlType, Gguf, GgufError, GgufWriter, OwnedArray, OwnedValue, Value};

/// Bytes in a `u64`-aligned buffer, so typed tensor views work (also under Miri).
struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    fn new(b: &[u8]) -> Self {
        let mut words = vec![0u64; b.len().div_ceil(8)];
        for (i, &x) in b.iter().enumerate() {
            words[i / 8] |= u64::from(x) << (8 * (i % 8));
        }
        Aligned {
            words,
            len: b.len(),
        }
    }
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &zerocopy::IntoBytes::as_bytes(self.words.as_slice())[..self.len]
    }
}

#[test]
fn all_value_types_round_trip() -> Result<(), GgufError> {
    let values: Vec<(&str, OwnedValue)> = vec![
        ("u8", 7u8.into()),
        ("i8", (-7i8).into()),
        ("u16", 700u16.into()),
        ("i16", (-700i16).into()),
        ("u32", 70000u32.into()),
        ("i32", (-70000i32).into()),
        ("f32", 1.5f32.into()),
        ("bool", true.into()),
        ("str", "héllo".into()),
        ("u64", u64::MAX.into()),
        ("i64", i64::MIN.into()),
        ("f64", 0.1f64.into()),
        ("arr.f32", vec![1.0f32, -2.0, 3.5].into()),
        ("arr.i32", vec![1i32, -2, 3].into()),
        ("arr.str", vec!["a", "", "ccc"].into()),
        ("arr.bool", vec![true, false].into()),
        ("arr.u8", OwnedArray::U8(vec![]).into()),
    ];
    let mut w = GgufWriter::new(Vec::new());
    for (k, v) in &values {
        w.add(*k, v.clone())?;
    }
    let bytes = w.finish()?;
    let f = Gguf::from_bytes(bytes)?;
    assert_eq!(f.version(), 3);
    let back: Vec<(String, OwnedValue)> = f
        .metadata()
        .map(|(k, v)| (k.to_owned(), v.to_owned_value()))
        .collect();
    let want: Vec<(String, OwnedValue)> =
        values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(back, want);
    assert_eq!(f.get("u32"), Some(Value::U32(70000)));
    assert_eq!(f.get_u32("u32")?, 70000);
    assert!(matches!(f.get_u32("i32"), Err(GgufError::WrongType { .. })));
    assert!(matches!(
        f.get_u32("nope"),
        Err(GgufError::MissingKey { .. })
    ));
    assert_eq!(f.get_f32_array("arr.f32")?.to_vec(), [1.0, -2.0, 3.5]);
    assert_eq!(f.get_i32_array("arr.i32")?.get(1), Some(-2));
    assert_eq!(f.get_str_array("arr.str")?.len(), 3);
    Ok(())
}

#[test]
fn tensors_round_trip() -> Result<(), GgufError> {
    let src: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.37).collect();
    let q = quantize_q8_0(&src)?;
    let mut w = GgufWriter::new(Vec::new());
    w.add_str("general.architecture", "test")?;
    w.add_u32("general.alignment", 64)?;
    w.add_tensor("a", GgmlType::F32, &[3])?;
    w.add_tensor("q", GgmlType::Q8_0, &[32, 2])?;
    w.write_tensor_f32("a", &[1.0, 2.0, 3.0])?;
    w.write_tensor_q8_0("q", &q)?;
    let bytes = w.finish()?;
    assert_eq!(bytes.len() % 64, 0);
    let f = Gguf::from_bytes(Aligned::new(&bytes))?;
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    let a = f.require_tensor("a")?;
    assert_eq!(f.tensor_f32(a)?, [1.0, 2.0, 3.0]);
    let t = f.require_tensor("q")?;
    assert_eq!(t.offset, 64);
    assert_eq!(t.size, 68);
    assert_eq!(f.tensor_q8_0(t)?, q.as_slice());
    let deq = f.dequantize(t)?;
    for (x, y) in src.iter().zip(&deq) {
        assert!((x - y).abs() <= 0.1, "{x} vs {y}");
    }
    assert!(matches!(
        f.tensor_f32(t),
        Err(GgufError::TensorTypeMismatch { .. })
    ));
    assert!(matches!(
        f.require_tensor("zz"),
        Err(GgufError::TensorNotFound { .. })
    ));
    Ok(())
}
