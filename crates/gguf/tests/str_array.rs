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

#[test]
fn a_cut_character_completed_by_the_next_length_prefix_is_rejected() {
    // "日" is E6 97 A5. A string holding only E6, followed by a string of 0xA597 bytes whose
    // length prefix starts 97 A5: the bytes in a row are valid UTF-8, the first string is not.
    let long = vec![b'x'; 0xA597];
    let (file, offsets) = array_file(&[b"ok", b"\xe6", &long, b"ok"]);
    assert!(matches!(
        Gguf::from_bytes(file.as_slice()),
        Err(GgufError::InvalidUtf8 { offset }) if offset == offsets[1] as u64
    ));
}

/// A byte container that hands out other bytes after the first call (what `StrArray` must not
/// trust the parser about).
struct Swapped {
    parsed: Vec<u8>,
    later: Vec<u8>,
    calls: std::cell::Cell<usize>,
}

impl AsRef<[u8]> for Swapped {
    fn as_ref(&self) -> &[u8] {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == 1 {
            &self.parsed
        } else {
            &self.later
        }
    }
}

#[test]
fn str_array_checks_the_bytes_it_is_given() {
    let long = "x".repeat(0xA597);
    // (byte, string): one-byte string 1 or 3 becomes that byte. E6 before the long string's
    // length prefix (97 A5 ...) makes valid UTF-8 in a row; it must still be rejected.
    for (bad, index) in [(0xe6, 1), (0xff, 1), (0xe6, 3)] {
        let good: Vec<&[u8]> = vec![b"ok", b"x", long.as_bytes(), b"y", b"ok"];
        let (parsed, offsets) = array_file(&good);
        let mut later = parsed.clone();
        later[offsets[index]] = bad;
        let f = Gguf::from_bytes(Swapped {
            parsed,
            later,
            calls: std::cell::Cell::new(0),
        })
        .unwrap();
        // The iterator stops at the invalid string.
        let got: Vec<&str> = f.get_str_array("k").unwrap().collect();
        assert_eq!(got.len(), index, "{bad:#x} in string {index}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 48 },
        failure_persistence: None,
        ..Default::default()
    })]

    /// Arrays of valid strings of any length (up to several validation windows in all), some with
    /// random bytes put in: the parser accepts exactly the arrays whose every string is UTF-8,
    /// reports the first bad one, and `StrArray` gives back every string.
    #[test]
    fn any_array_is_checked_like_one_string_at_a_time(
        valid in proptest::collection::vec(
            proptest::prop_oneof![
                4 => ".{0,12}",
                1 => "[a-zé日]{100,300}",
            ],
            0..if cfg!(miri) { 40 } else { 12_000 },
        ),
        bad in proptest::option::of((
            proptest::num::usize::ANY,
            proptest::collection::vec(proptest::num::u8::ANY, 0..6),
        )),
    ) {
        let mut pieces: Vec<Vec<u8>> = valid.into_iter().map(String::into_bytes).collect();
        if let Some((at, bytes)) = bad {
            pieces.insert(at % (pieces.len() + 1), bytes);
        }
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let (file, offsets) = array_file(&refs);
        let first_bad = pieces.iter().position(|p| std::str::from_utf8(p).is_err());
        match (Gguf::from_bytes(file.as_slice()), first_bad) {
            (Ok(f), None) => {
                let got: Vec<&[u8]> = f.get_str_array("k").unwrap().map(str::as_bytes).collect();
                proptest::prop_assert_eq!(got, refs);
            }
            (Err(GgufError::InvalidUtf8 { offset }), Some(i)) => {
                proptest::prop_assert_eq!(offset, offsets[i] as u64);
            }
            (r, bad) => proptest::prop_assert!(false, "{:?} with first bad string {:?}", r.err(), bad),
        }
    }
}
