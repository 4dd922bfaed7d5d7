//! String arrays: the run-wise UTF-8 validation of the parser and of `StrArray` agrees with
//! checking each string on its own, whatever the string lengths (length prefixes that are not
//! ASCII, runs longer than one validation chunk) and wherever an invalid string sits.

mod common;

use common::Bytes;
use gguf::{Gguf, GgufError, GgufWriter};

/// Array length of the tests (much smaller under Miri, which is slow).
const N: usize = if cfg!(miri) { 600 } else { 20_000 };

/// Strings of many lengths: empty, multi-byte characters, lengths of 127, 128, 255, 256, 300 and
/// 70,000 bytes (length prefixes with bytes of 0x80 and above, one string longer than a run).
fn strings() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in 0..N / 4 {
        v.push(match i % 7 {
            0 => String::new(),
            1 => "▁the".to_owned(),
            2 => "日本語".repeat(i % 5),
            3 => "a".repeat(i % 130),
            4 => format!("<0x{:02X}>", i % 256),
            5 => "é".repeat(i % 140),
            _ => "x".to_owned(),
        });
    }
    for len in [127, 128, 255, 256, 300, 70_000] {
        v.insert(len % (N / 5), "z".repeat(len));
        v.push("ü".repeat(len / 2));
    }
    v
}

#[test]
fn str_array_round_trips() -> Result<(), GgufError> {
    let strs = strings();
    let mut w = GgufWriter::new(Vec::new());
    w.add("arr", strs.clone())?;
    let f = Gguf::from_bytes(w.finish()?)?;
    let back: Vec<&str> = f.get_str_array("arr")?.collect();
    assert_eq!(back, strs);
    // Starting again part way (a clone keeps its position).
    let mut it = f.get_str_array("arr")?;
    let skip = N / 16;
    for _ in 0..skip {
        it.next();
    }
    assert_eq!(it.len(), strs.len() - skip);
    assert_eq!(it.clone().collect::<Vec<_>>(), strs[skip..]);
    let a = f.get_array("arr")?;
    let i = N / 5 - 3;
    assert_eq!(a.get(i).and_then(|v| v.as_str()), Some(strs[i].as_str()));
    Ok(())
}

/// A file with one string array `k` of `strs`, raw bytes (so any of them may be invalid).
fn array_file(strs: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9).u32(8).u64(strs.len() as u64);
    let mut offsets = Vec::new();
    let mut at = 24 + 8 + 1 + 4 + 4 + 8;
    for s in strs {
        b.u64(s.len() as u64).raw(s);
        offsets.push(at + 8);
        at += 8 + s.len();
    }
    (b.build(), offsets)
}

#[test]
fn invalid_string_is_reported_at_its_offset_wherever_it_sits() -> Result<(), GgufError> {
    let long = "é".repeat(100);
    let pieces: Vec<&[u8]> = (0..N)
        .map(|i| match i % 3 {
            0 => "ab".as_bytes(),
            // Non-ASCII length prefixes (200) in the first half only: the second half is
            // validated in whole runs.
            1 if i < N / 2 => long.as_bytes(),
            1 => "é".as_bytes(),
            _ => "日本".as_bytes(),
        })
        .collect();
    let (good, _) = array_file(&pieces);
    assert_eq!(
        Gguf::from_bytes(good.as_slice())?
            .get_str_array("k")?
            .count(),
        N
    );
    let bad_bytes: [&[u8]; 4] = [b"\xff", b"a\x80", "é".as_bytes().split_at(1).0, b"\xe6\x97"];
    let positions: &[usize] = if cfg!(miri) {
        &[1, N / 2 + 1, N - 1]
    } else {
        &[0, 1, 2, N / 3, N / 2 + 1, N * 3 / 4, N - 1]
    };
    for &bad_at in positions {
        for bad in bad_bytes {
            let mut p = pieces.clone();
            p[bad_at] = bad;
            let (file, offsets) = array_file(&p);
            match Gguf::from_bytes(file.as_slice()) {
                Err(GgufError::InvalidUtf8 { offset }) => {
                    assert_eq!(
                        offset, offsets[bad_at] as u64,
                        "bad string {bad:?} at {bad_at}"
                    )
                }
                other => panic!("bad string {bad:?} at {bad_at}: {other:?}"),
            }
        }
    }
    Ok(())
}

#[test]
fn strings_split_inside_a_character_are_rejected() {
    // "日" cut after its first byte: the two halves are invalid although their concatenation
    // with the prefix in between would not be a valid character either.
    let d = "日".as_bytes();
    let (file, offsets) = array_file(&[&d[..1], &d[1..]]);
    assert!(matches!(
        Gguf::from_bytes(file.as_slice()),
        Err(GgufError::InvalidUtf8 { offset }) if offset == offsets[0] as u64
    ));
}
