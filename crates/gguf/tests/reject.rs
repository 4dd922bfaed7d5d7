//! One test per malformed-file rejection, each built from hand-written bytes.

mod common;

use common::Bytes;
use gguf::{Gguf, GgufError};

fn parse(b: &[u8]) -> Result<Gguf<&[u8]>, GgufError> {
    Gguf::from_bytes(b)
}

fn err(b: &[u8]) -> GgufError {
    match parse(b) {
        Ok(_) => panic!("malformed file was accepted"),
        Err(e) => e,
    }
}

/// A small valid file: two keys, two F32 tensors of 4 and 2 values, no trailing padding, so every
/// strict prefix of it is truncated.
fn valid() -> Vec<u8> {
    let mut b = Bytes::header(3, 2, 2);
    b.kv_str("general.architecture", "t").kv_u32("n", 7);
    b.tensor("a", &[4], 0, 0).tensor("b", &[2], 0, 32);
    b.pad(32);
    for i in 0..4 {
        b.raw(&(i as f32).to_le_bytes());
    }
    b.pad(32);
    b.raw(&1.0f32.to_le_bytes()).raw(&2.0f32.to_le_bytes());
    b.build()
}

#[test]
fn valid_file_is_accepted() {
    let v = valid();
    let f = parse(&v).unwrap();
    assert_eq!(f.tensors().len(), 2);
    assert_eq!(f.get_u32("n").unwrap(), 7);
    assert_eq!(f.dequantize(f.tensor("b").unwrap()).unwrap(), [1.0, 2.0]);
}

#[test]
fn truncation_at_every_byte_is_rejected() {
    let v = valid();
    for len in 0..v.len() {
        match parse(&v[..len]) {
            Err(GgufError::Truncated { .. })
            | Err(GgufError::StringTooLong { .. })
            | Err(GgufError::CountTooLarge { .. })
            | Err(GgufError::DataPastEnd { .. })
            | Err(GgufError::TensorOutOfBounds { .. }) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn truncated_header_field_reports_field() {
    let v = valid();
    assert!(matches!(
        err(&v[..2]),
        GgufError::Truncated { what: "magic", .. }
    ));
    assert!(matches!(
        err(&v[..6]),
        GgufError::Truncated {
            what: "version",
            ..
        }
    ));
    assert!(matches!(
        err(&v[..12]),
        GgufError::Truncated {
            what: "tensor count",
            ..
        }
    ));
    assert!(matches!(
        err(&v[..20]),
        GgufError::Truncated {
            what: "metadata count",
            ..
        }
    ));
}

#[test]
fn empty_file() {
    assert!(matches!(err(&[]), GgufError::Truncated { offset: 0, .. }));
}

#[test]
fn bad_magic() {
    let mut v = valid();
    v[0..4].copy_from_slice(b"GGML");
    assert!(matches!(err(&v), GgufError::BadMagic { found } if &found == b"GGML"));
}

#[test]
fn versions_0_1_4_and_max_are_rejected() {
    for version in [0, 1, 4, 5, 0xffff, u32::MAX] {
        let b = Bytes::header(version, 0, 0).build();
        assert!(
            matches!(err(&b), GgufError::UnsupportedVersion { version: v } if v == version),
            "{version}"
        );
    }
}

#[test]
fn version_2_is_accepted() {
    let b = Bytes::header(2, 0, 0).build();
    assert_eq!(parse(&b).unwrap().version(), 2);
}

#[test]
fn byte_swapped_versions_are_big_endian() {
    for version in [2u32, 3] {
        let b = Bytes::header(version.swap_bytes(), 0, 0).build();
        assert!(matches!(err(&b), GgufError::ByteSwapped { .. }));
    }
}

#[test]
fn tensor_count_larger_than_file() {
    for n in [1, 1000, u64::MAX] {
        let b = Bytes::header(3, n, 0).build();
        assert!(matches!(
            err(&b),
            GgufError::CountTooLarge { what: "tensor", .. }
        ));
    }
}

#[test]
fn metadata_count_larger_than_file() {
    for n in [1, 1 << 40, u64::MAX] {
        let b = Bytes::header(3, 0, n).build();
        assert!(matches!(
            err(&b),
            GgufError::CountTooLarge {
                what: "metadata key",
                ..
            }
        ));
    }
}

#[test]
fn key_length_past_end() {
    let mut b = Bytes::header(3, 0, 1);
    b.u64(100).raw(b"abc").u32(0).u8(0).raw(&[0; 8]);
    assert!(matches!(
        err(&b.build()),
        GgufError::StringTooLong { len: 100, .. }
    ));
}

#[test]
fn string_length_overflowing() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(8).u64(u64::MAX).raw(&[0; 16]);
    assert!(matches!(
        err(&b.build()),
        GgufError::StringTooLong { len: u64::MAX, .. }
    ));
}

#[test]
fn string_value_past_end() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(8).u64(9).raw(b"12345678");
    assert!(matches!(
        err(&b.build()),
        GgufError::StringTooLong {
            len: 9,
            remaining: 8,
            ..
        }
    ));
}

#[test]
fn invalid_utf8_key() {
    let mut b = Bytes::header(3, 0, 1);
    b.u64(2).raw(&[0xc3, 0x28]).u32(0).u8(1);
    assert!(matches!(
        err(&b.build()),
        GgufError::InvalidUtf8 { offset: 32 }
    ));
}

#[test]
fn invalid_utf8_string_value() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(8).u64(1).u8(0xff);
    assert!(matches!(err(&b.build()), GgufError::InvalidUtf8 { .. }));
}

#[test]
fn invalid_utf8_in_string_array() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(8).u64(2).str("ok").u64(1).u8(0x80);
    assert!(matches!(err(&b.build()), GgufError::InvalidUtf8 { .. }));
}

#[test]
fn array_count_larger_than_file() {
    for (elem, count) in [
        (4u32, 3u64),
        (4, u64::MAX),
        (10, u64::MAX / 4),
        (0, 1 << 62),
        (8, 2),
    ] {
        let mut b = Bytes::header(3, 0, 1);
        b.str("k").u32(9).u32(elem).u64(count).raw(&[0; 8]);
        assert!(
            matches!(
                err(&b.build()),
                GgufError::CountTooLarge {
                    what: "array element",
                    ..
                }
            ),
            "elem {elem} count {count}"
        );
    }
}

#[test]
fn array_string_element_past_end() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(8).u64(1).u64(1000).raw(b"short");
    assert!(matches!(
        err(&b.build()),
        GgufError::StringTooLong { len: 1000, .. }
    ));
}

#[test]
fn unknown_value_type() {
    for t in [13u32, 100, u32::MAX] {
        let mut b = Bytes::header(3, 0, 1);
        b.str("k").u32(t).u32(0);
        assert!(
            matches!(err(&b.build()), GgufError::UnknownValueType { type_id, offset: 33 } if type_id == t)
        );
    }
}

#[test]
fn unknown_array_element_type() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(13).u64(0);
    assert!(matches!(
        err(&b.build()),
        GgufError::UnknownValueType {
            type_id: 13,
            offset: 37
        }
    ));
}

#[test]
fn nested_array() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
    assert!(matches!(err(&b.build()), GgufError::NestedArray { key } if key == "k"));
}

#[test]
fn bool_not_0_or_1() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(7).u8(2);
    assert!(matches!(
        err(&b.build()),
        GgufError::InvalidBool { byte: 2, .. }
    ));
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(7).u64(3).raw(&[0, 1, 0xff]);
    assert!(matches!(
        err(&b.build()),
        GgufError::InvalidBool { byte: 0xff, .. }
    ));
}

#[test]
fn duplicate_keys() {
    let mut b = Bytes::header(3, 0, 2);
    b.kv_u32("k", 1).kv_str("k", "x");
    assert!(matches!(err(&b.build()), GgufError::DuplicateKey { key } if key == "k"));
}

#[test]
fn alignment_zero_not_power_of_two_or_too_large() {
    for a in [0u32, 3, 48, (1 << 20) + 1, 1 << 21, u32::MAX] {
        let mut b = Bytes::header(3, 0, 1);
        b.kv_u32("general.alignment", a);
        assert!(
            matches!(err(&b.build()), GgufError::InvalidAlignment { alignment } if alignment == u64::from(a)),
            "{a}"
        );
    }
}

#[test]
fn alignment_powers_of_two_up_to_1_mib_are_accepted() {
    for a in [1u32, 2, 64, 4096, 1 << 20] {
        let mut b = Bytes::header(3, 0, 1);
        b.kv_u32("general.alignment", a);
        assert_eq!(parse(&b.build()).unwrap().alignment(), u64::from(a));
    }
}

#[test]
fn alignment_not_u32() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("general.alignment").u32(10).u64(32);
    assert!(matches!(
        err(&b.build()),
        GgufError::AlignmentWrongType { found: "u64" }
    ));
    let mut b = Bytes::header(3, 0, 1);
    b.kv_str("general.alignment", "32");
    assert!(matches!(
        err(&b.build()),
        GgufError::AlignmentWrongType { found: "string" }
    ));
}

/// A file with `infos` tensor infos (already encoded) and `data` bytes of data section.
fn with_tensors(n: u64, infos: impl FnOnce(&mut Bytes), data: usize) -> Vec<u8> {
    let mut b = Bytes::header(3, n, 0);
    infos(&mut b);
    b.pad(32).raw(&vec![0; data]);
    b.build()
}

#[test]
fn duplicate_tensor_names() {
    let v = with_tensors(
        2,
        |b| {
            b.tensor("w", &[8], 0, 0).tensor("w", &[8], 0, 32);
        },
        64,
    );
    assert!(matches!(err(&v), GgufError::DuplicateTensor { name } if name == "w"));
}

#[test]
fn tensor_name_too_long() {
    let long = "x".repeat(64);
    let v = with_tensors(
        1,
        |b| {
            b.tensor(&long, &[8], 0, 0);
        },
        32,
    );
    assert!(matches!(
        err(&v),
        GgufError::TensorNameTooLong {
            len: 64,
            max: 63,
            ..
        }
    ));
    let ok = "x".repeat(63);
    let v = with_tensors(
        1,
        |b| {
            b.tensor(&ok, &[8], 0, 0);
        },
        32,
    );
    assert!(parse(&v).is_ok());
}

#[test]
fn too_many_dims() {
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[1, 1, 1, 1, 1], 0, 0);
        },
        32,
    );
    assert!(matches!(err(&v), GgufError::TooManyDims { n_dims: 5, .. }));
    let mut b = Bytes::header(3, 1, 0);
    b.str("w").u32(u32::MAX).raw(&[0; 64]);
    assert!(matches!(
        err(&b.build()),
        GgufError::TooManyDims {
            n_dims: u32::MAX,
            ..
        }
    ));
}

#[test]
fn element_count_overflow() {
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[1 << 32, 1 << 32], 0, 0);
        },
        32,
    );
    assert!(matches!(err(&v), GgufError::ShapeOverflow { .. }));
}

#[test]
fn dimension_above_i64_max() {
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[1 << 63], 24, 0);
        },
        32,
    );
    assert!(matches!(err(&v), GgufError::ShapeOverflow { .. }));
}

#[test]
fn byte_size_overflow() {
    // 2^62 f32 elements fit in i64, but 2^64 bytes do not fit in u64.
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[1 << 31, 1 << 31], 0, 0);
        },
        32,
    );
    assert!(matches!(err(&v), GgufError::ShapeOverflow { .. }));
}

#[test]
fn ne0_not_multiple_of_block_size() {
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[33, 2], 8, 0);
        },
        128,
    );
    assert!(matches!(
        err(&v),
        GgufError::NotBlockMultiple {
            ne0: 33,
            block_size: 32,
            ggml_type: gguf::GgmlType::Q8_0,
            ..
        }
    ));
}

#[test]
fn unknown_ggml_type() {
    for id in [42u32, 1000, u32::MAX] {
        let v = with_tensors(
            1,
            |b| {
                b.tensor("w", &[8], id, 0);
            },
            32,
        );
        assert!(
            matches!(err(&v), GgufError::UnknownGgmlType { id: i } if i == id),
            "{id}"
        );
    }
}

#[test]
fn removed_ggml_types() {
    for id in [4u32, 5, 31, 32, 33, 36, 37, 38] {
        let v = with_tensors(
            1,
            |b| {
                b.tensor("w", &[256], id, 0);
            },
            1024,
        );
        assert!(
            matches!(err(&v), GgufError::RemovedGgmlType { id: i, .. } if i == id),
            "{id}"
        );
    }
}

#[test]
fn unaligned_offset() {
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[2], 0, 4);
        },
        64,
    );
    assert!(matches!(
        err(&v),
        GgufError::UnalignedTensorOffset {
            offset: 4,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn offset_past_end() {
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[2], 0, 64);
        },
        64,
    );
    assert!(matches!(
        err(&v),
        GgufError::TensorOutOfBounds {
            offset: 64,
            size: 8,
            data_len: 64,
            ..
        }
    ));
}

#[test]
fn offset_plus_size_overflowing() {
    let off = u64::MAX - 31;
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[16], 0, off);
        },
        64,
    );
    assert!(matches!(err(&v), GgufError::TensorOutOfBounds { offset, .. } if offset == off));
}

#[test]
fn data_past_end_of_file() {
    // The tensor needs 64 bytes; the data section has 32.
    let v = with_tensors(
        1,
        |b| {
            b.tensor("w", &[16], 0, 0);
        },
        32,
    );
    assert!(matches!(
        err(&v),
        GgufError::TensorOutOfBounds {
            size: 64,
            data_len: 32,
            ..
        }
    ));
}

#[test]
fn data_section_starts_past_end_of_file() {
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[0], 0, 0);
    // no padding: the file ends before the aligned start of the data section
    assert!(matches!(err(&b.build()), GgufError::DataPastEnd { .. }));
}

#[test]
fn overlapping_tensors() {
    let v = with_tensors(
        2,
        |b| {
            b.tensor("a", &[16], 0, 0).tensor("b", &[8], 0, 32);
        },
        96,
    );
    assert!(
        matches!(err(&v), GgufError::TensorsOverlap { first, second } if first == "a" && second == "b")
    );
}

#[test]
fn same_offset_is_overlap() {
    let v = with_tensors(
        2,
        |b| {
            b.tensor("a", &[8], 0, 32).tensor("b", &[8], 0, 32);
        },
        96,
    );
    assert!(matches!(err(&v), GgufError::TensorsOverlap { .. }));
}

#[test]
fn invalid_utf8_tensor_name() {
    let mut b = Bytes::header(3, 1, 0);
    b.u64(1)
        .u8(0xfe)
        .u32(1)
        .u64(8)
        .u32(0)
        .u64(0)
        .pad(32)
        .raw(&[0; 32]);
    assert!(matches!(err(&b.build()), GgufError::InvalidUtf8 { .. }));
}

#[test]
fn empty_key_and_empty_tensor_name() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("").u32(4).u32(7);
    assert!(matches!(
        err(&b.build()),
        GgufError::EmptyName {
            what: "metadata key",
            offset: 24
        }
    ));
    let mut b = Bytes::header(3, 1, 0);
    b.u64(0).u32(1).u64(8).u32(0).u64(0).pad(32).raw(&[0; 32]);
    assert!(matches!(
        err(&b.build()),
        GgufError::EmptyName {
            what: "tensor name",
            ..
        }
    ));
    // The writer refuses them too.
    let mut w = gguf::GgufWriter::new(Vec::new());
    assert!(matches!(w.add("", 1u32), Err(GgufError::EmptyName { .. })));
    assert!(matches!(
        w.add_tensor("", gguf::GgmlType::F32, &[4]),
        Err(GgufError::EmptyName { .. })
    ));
}

#[test]
fn a_tiny_file_claiming_huge_counts_allocates_nothing_big() {
    // 64 bytes claiming 2^60 tensors, 2^60 keys, and (in a second file) one key holding an
    // array of 2^60 strings: every count is checked against the bytes left before anything is
    // allocated, so these are refused at once (a gigabyte allocation would abort the test).
    let mut b = Bytes::header(3, 1 << 60, 1 << 60);
    b.raw(&[0; 40]);
    let bytes = b.build();
    assert!(bytes.len() <= 64);
    assert!(parse(&bytes).is_err());
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(8).u64(1 << 60).raw(&[0; 8]);
    let bytes = b.build();
    assert!(bytes.len() <= 64, "{}", bytes.len());
    assert!(parse(&bytes).is_err());
}
