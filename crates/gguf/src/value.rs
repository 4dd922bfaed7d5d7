//! Metadata values: borrowed views into a file ([`Value`], [`ArrayValue`], [`ArrayView`],
//! [`StrArray`]) and owned values for the writer ([`OwnedValue`], [`OwnedArray`]).
//!
//! Arrays are never copied when read: numeric arrays are viewed through zerocopy's
//! little-endian wrapper types, which have alignment 1, so a view is valid wherever the array
//! happens to sit in the file. Nested arrays (arrays of arrays) are rejected at parse time with
//! [`crate::GgufError::NestedArray`], as ggml does.

use std::fmt;
use std::marker::PhantomData;

use zerocopy::little_endian as le;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::GgufError;

/// The 13 GGUF metadata value types (`enum gguf_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// `u8`
    U8 = 0,
    /// `i8`
    I8 = 1,
    /// `u16`
    U16 = 2,
    /// `i16`
    I16 = 3,
    /// `u32`
    U32 = 4,
    /// `i32`
    I32 = 5,
    /// `f32`
    F32 = 6,
    /// `bool` (one byte, 0 or 1)
    Bool = 7,
    /// UTF-8 string (u64 length + bytes)
    Str = 8,
    /// Array (u32 element type + u64 count + elements)
    Array = 9,
    /// `u64`
    U64 = 10,
    /// `i64`
    I64 = 11,
    /// `f64`
    F64 = 12,
}

impl ValueType {
    /// The type from its id, or `None` for an id above 12.
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => Str,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The numeric id stored in files.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// A short lower-case name (`"u32"`, `"string"`, `"array"`).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            Str => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The name of an array of this element type (`"array of u32"`).
    pub fn array_name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "array of u8",
            I8 => "array of i8",
            U16 => "array of u16",
            I16 => "array of i16",
            U32 => "array of u32",
            I32 => "array of i32",
            F32 => "array of f32",
            Bool => "array of bool",
            Str => "array of string",
            Array => "array of array",
            U64 => "array of u64",
            I64 => "array of i64",
            F64 => "array of f64",
        }
    }

    /// Bytes per value for fixed-size types; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            Str | Array => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// A string (validated UTF-8).
    Str(&'a str),
    /// An array of any non-array type.
    Array(ArrayValue<'a>),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::Str(_) => ValueType::Str,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// A description of the type including the element type of arrays (`"array of f32"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Array(a) => a.elem_type().array_name(),
            v => v.value_type().name(),
        }
    }

    /// The value as an unsigned integer, if it is an integer of any width that is non-negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an `f64`, if it is a number (integers and floats).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v as f64),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The array, if this is an array.
    pub fn as_array(&self) -> Option<ArrayValue<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Copies the value into an [`OwnedValue`] (e.g. to write it into another file).
    pub fn to_owned_value(&self) -> OwnedValue {
        match *self {
            Value::U8(v) => OwnedValue::U8(v),
            Value::I8(v) => OwnedValue::I8(v),
            Value::U16(v) => OwnedValue::U16(v),
            Value::I16(v) => OwnedValue::I16(v),
            Value::U32(v) => OwnedValue::U32(v),
            Value::I32(v) => OwnedValue::I32(v),
            Value::F32(v) => OwnedValue::F32(v),
            Value::Bool(v) => OwnedValue::Bool(v),
            Value::Str(v) => OwnedValue::Str(v.to_owned()),
            Value::U64(v) => OwnedValue::U64(v),
            Value::I64(v) => OwnedValue::I64(v),
            Value::F64(v) => OwnedValue::F64(v),
            Value::Array(a) => OwnedValue::Array(a.to_owned_array()),
        }
    }
}

/// Reads one scalar of type `ty` from the front of `b` (which the parser has validated).
pub(crate) fn read_scalar(ty: ValueType, b: &[u8]) -> Option<Value<'_>> {
    fn arr<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
        b.get(..N)?.try_into().ok()
    }
    Some(match ty {
        ValueType::U8 => Value::U8(*b.first()?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(arr(b)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(arr(b)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(arr(b)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(arr(b)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(arr(b)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(arr(b)?)),
        ValueType::Bool => Value::Bool(*b.first()? != 0),
        ValueType::U64 => Value::U64(u64::from_le_bytes(arr(b)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(arr(b)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(arr(b)?)),
        ValueType::Str | ValueType::Array => return None,
    })
}

/// Splits a length-prefixed string off the front of `b` (already validated by the parser).
pub(crate) fn split_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let len = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let rest = b.get(8..)?;
    let s = rest.get(..len)?;
    // The parser validated every string; re-checking here keeps this safe even if the byte
    // container returned different bytes later (it is generic), and costs one fast pass.
    let s = std::str::from_utf8(s).ok()?;
    Some((s, rest.get(len..)?))
}

/// The longest valid UTF-8 prefix of `b`: validated with SIMD (`simdutf8`, which picks the CPU's
/// best instruction set at run time) for the long runs of string arrays, where `std`'s validator
/// is the bottleneck of reading a 262,144-piece vocabulary; with `std` under Miri, which does not
/// model those intrinsics.
fn utf8_prefix(b: &[u8]) -> &str {
    #[cfg(not(miri))]
    use simdutf8::compat::from_utf8;
    #[cfg(miri)]
    use std::str::from_utf8;
    match from_utf8(b) {
        Ok(s) => s,
        // Only for invalid bytes (or a length prefix that is not ASCII): validate the good part
        // again to borrow it as a `str`.
        Err(e) => b
            .get(..e.valid_up_to())
            .and_then(|v| from_utf8(v).ok())
            .unwrap_or(""),
    }
}

/// Bytes of a string array validated by one [`utf8_prefix`] call: big enough to amortise the
/// call, small enough that they are still in cache when their strings are read.
const RUN_BYTES: usize = 64 * 1024;

/// The length in a length prefix whose eight bytes are all ASCII (every length below 128, and
/// more). Within a valid UTF-8 text, the string after such a prefix starts on a character
/// boundary: the prefix bytes are whole one-byte characters.
#[inline]
fn ascii_prefix(b: &[u8]) -> Option<usize> {
    let w = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    if w & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    usize::try_from(w).ok()
}

/// An array value borrowed from the file: element type, count and the raw element bytes.
#[derive(Clone, Copy, PartialEq)]
pub struct ArrayValue<'a> {
    pub(crate) elem: ValueType,
    pub(crate) len: usize,
    /// The elements (for strings: the length-prefixed strings back to back).
    pub(crate) bytes: &'a [u8],
}

impl fmt::Debug for ArrayValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for v in self.iter().take(8) {
            l.entry(&v);
        }
        if self.len > 8 {
            l.entry(&format_args!("... {} more", self.len - 8));
        }
        l.finish()
    }
}

impl<'a> ArrayValue<'a> {
    /// The element type (never [`ValueType::Array`]).
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw little-endian element bytes (strings: u64 length + bytes each).
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Element `i` (strings are found by a linear scan; use [`ArrayValue::as_strs`] to iterate).
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len {
            return None;
        }
        match self.elem.fixed_size() {
            Some(size) => read_scalar(self.elem, self.bytes.get(i.checked_mul(size)?..)?),
            None => self.as_strs()?.nth(i).map(Value::Str),
        }
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            elem: self.elem,
            rest: self.bytes,
            remaining: self.len,
        }
    }

    /// A typed zero-copy view, if the element type is `T`.
    pub fn as_view<T: ArrayElement>(&self) -> Option<ArrayView<'a, T>> {
        if self.elem != T::TYPE {
            return None;
        }
        let raw = <[T::Le]>::ref_from_bytes(self.bytes).ok()?;
        Some(ArrayView {
            raw,
            _t: PhantomData,
        })
    }

    /// The strings, if the element type is string.
    pub fn as_strs(&self) -> Option<StrArray<'a>> {
        (self.elem == ValueType::Str).then(|| StrArray::new(self.bytes, self.len))
    }

    /// Copies the array into an [`OwnedArray`].
    pub fn to_owned_array(&self) -> OwnedArray {
        fn v<T: ArrayElement>(a: &ArrayValue<'_>) -> Vec<T> {
            a.as_view::<T>().map(|v| v.to_vec()).unwrap_or_default()
        }
        match self.elem {
            ValueType::U8 => OwnedArray::U8(v(self)),
            ValueType::I8 => OwnedArray::I8(v(self)),
            ValueType::U16 => OwnedArray::U16(v(self)),
            ValueType::I16 => OwnedArray::I16(v(self)),
            ValueType::U32 => OwnedArray::U32(v(self)),
            ValueType::I32 => OwnedArray::I32(v(self)),
            ValueType::F32 => OwnedArray::F32(v(self)),
            ValueType::U64 => OwnedArray::U64(v(self)),
            ValueType::I64 => OwnedArray::I64(v(self)),
            ValueType::F64 => OwnedArray::F64(v(self)),
            ValueType::Bool => OwnedArray::Bool(self.bytes.iter().map(|&b| b != 0).collect()),
            ValueType::Str => OwnedArray::Str(
                self.as_strs()
                    .map(|s| s.map(str::to_owned).collect())
                    .unwrap_or_default(),
            ),
            ValueType::Array => OwnedArray::U8(Vec::new()),
        }
    }
}

/// Iterator over the elements of an [`ArrayValue`].
#[derive(Clone, Debug)]
pub struct ArrayIter<'a> {
    elem: ValueType,
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match self.elem.fixed_size() {
            Some(size) => {
                let v = read_scalar(self.elem, self.rest)?;
                self.rest = self.rest.get(size..)?;
                Some(v)
            }
            None => {
                let (s, rest) = split_str(self.rest)?;
                self.rest = rest;
                Some(Value::Str(s))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ArrayIter<'_> {}

mod sealed {
    pub trait Sealed {}
}

/// A numeric type that can be viewed in place inside a GGUF array (`u8`…`f64`, not `bool`).
pub trait ArrayElement: sealed::Sealed + Copy + 'static {
    /// The GGUF element type.
    const TYPE: ValueType;
    /// The unaligned little-endian storage type.
    type Le: FromBytes + Immutable + KnownLayout + Unaligned + Copy;
    /// Decodes one stored element.
    fn from_le(v: Self::Le) -> Self;
}

macro_rules! elem {
    ($t:ty, $vt:ident, $le:ty, |$v:ident| $conv:expr) => {
        impl sealed::Sealed for $t {}
        impl ArrayElement for $t {
            const TYPE: ValueType = ValueType::$vt;
            type Le = $le;
            fn from_le($v: $le) -> $t {
                $conv
            }
        }
    };
}

elem!(u8, U8, u8, |v| v);
elem!(i8, I8, i8, |v| v);
elem!(u16, U16, le::U16, |v| v.get());
elem!(i16, I16, le::I16, |v| v.get());
elem!(u32, U32, le::U32, |v| v.get());
elem!(i32, I32, le::I32, |v| v.get());
elem!(f32, F32, le::F32, |v| v.get());
elem!(u64, U64, le::U64, |v| v.get());
elem!(i64, I64, le::I64, |v| v.get());
elem!(f64, F64, le::F64, |v| v.get());

/// A zero-copy view of a numeric metadata array; works at any alignment.
#[derive(Clone, Copy)]
pub struct ArrayView<'a, T: ArrayElement> {
    raw: &'a [T::Le],
    _t: PhantomData<T>,
}

impl<T: ArrayElement + fmt::Debug> fmt::Debug for ArrayView<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: ArrayElement> ArrayView<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Option<T> {
        self.raw.get(i).map(|&v| T::from_le(v))
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = T> + DoubleEndedIterator + 'a {
        self.raw.iter().map(|&v| T::from_le(v))
    }

    /// Copies the elements into a `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().collect()
    }

    /// The stored little-endian elements.
    pub fn as_le_slice(&self) -> &'a [T::Le] {
        self.raw
    }
}

/// The strings of a string array, in order; validated UTF-8. Cloning restarts nothing: it copies
/// the current position.
///
/// The iterator checks the bytes it hands out itself (the byte container is generic, so it does
/// not rely on the parser having seen the same bytes), but cheaply: it validates the array's bytes
/// (length prefixes included) 64 KiB at a time with a SIMD validator, and each string is then a
/// boundary-checked slice of that text, instead of one `std::str::from_utf8` call per string.
#[derive(Clone, Debug)]
pub struct StrArray<'a> {
    /// The entries (length prefix + bytes) not yet consumed.
    bytes: &'a [u8],
    /// A validated prefix of `bytes`.
    text: &'a str,
    remaining: usize,
}

impl<'a> StrArray<'a> {
    pub(crate) fn new(bytes: &'a [u8], len: usize) -> Self {
        StrArray {
            bytes,
            text: "",
            remaining: len,
        }
    }

    /// The next string, if it lies inside `text` after an ASCII length prefix. The string then
    /// starts on a character boundary of `text`, and `get` checks that it ends on one, so it is
    /// valid UTF-8.
    #[inline]
    fn next_in_text(&mut self) -> Option<&'a str> {
        let len = ascii_prefix(self.text.as_bytes())?;
        let end = len.checked_add(8)?;
        let s = self.text.get(8..end)?;
        self.text = self.text.get(end..)?;
        self.bytes = self.bytes.get(end..)?;
        Some(s)
    }

    /// Validates up to [`RUN_BYTES`] of the entries ahead (the window ends on a character
    /// boundary when the bytes are valid).
    fn refill(&mut self) {
        let mut end = self.bytes.len().min(RUN_BYTES);
        // Back off to the start of a character (at most 3 continuation bytes).
        for _ in 0..3 {
            match self.bytes.get(end) {
                Some(&b) if b & 0xC0 == 0x80 => end -= 1,
                _ => break,
            }
        }
        self.text = utf8_prefix(self.bytes.get(..end).unwrap_or(&[]));
    }
}

impl<'a> Iterator for StrArray<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if let Some(s) = self.next_in_text() {
            return Some(s);
        }
        // The entry runs past the validated text: validate further, unless its length prefix is
        // already in the text and not ASCII (then only checking it alone can help).
        if self.text.len() < 8 {
            self.refill();
            if let Some(s) = self.next_in_text() {
                return Some(s);
            }
        }
        // A long length prefix, or invalid bytes: this entry on its own.
        let (s, rest) = split_str(self.bytes)?;
        let used = self.bytes.len() - rest.len();
        self.bytes = rest;
        self.text = self.text.get(used..).unwrap_or("");
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StrArray<'_> {}

/// Checks that the `len` length-prefixed strings in `bytes` (whose lengths the parser has already
/// checked) are valid UTF-8; on failure, the offset in `bytes` of the first invalid string's bytes.
///
/// The same scheme as [`StrArray`], without borrowing the strings: `bytes[..valid_end]` is known
/// valid UTF-8 from some entry start at or before the current one.
pub(crate) fn check_strs(bytes: &[u8], len: usize) -> Result<(), usize> {
    /// The end of the entry at `pos`, if it lies in the validated bytes after an ASCII length
    /// prefix and ends on a character boundary (so its string is valid UTF-8).
    fn validated(bytes: &[u8], pos: usize, valid_end: usize) -> Option<usize> {
        let len = ascii_prefix(bytes.get(pos..valid_end)?)?;
        let end = pos.checked_add(8)?.checked_add(len)?;
        match bytes.get(end) {
            _ if end > valid_end => None,
            Some(&b) if end < valid_end && b & 0xC0 == 0x80 => None,
            _ => Some(end),
        }
    }
    let mut pos = 0usize;
    let mut valid_end = 0usize;
    for _ in 0..len {
        if let Some(end) = validated(bytes, pos, valid_end) {
            pos = end;
            continue;
        }
        if valid_end < pos.saturating_add(8) {
            let mut it = StrArray::new(bytes.get(pos..).unwrap_or(&[]), 1);
            it.refill();
            valid_end = pos + it.text.len();
            if let Some(end) = validated(bytes, pos, valid_end) {
                pos = end;
                continue;
            }
        }
        // A long length prefix, or invalid bytes: this entry on its own.
        let rest = bytes.get(pos..).and_then(split_str).ok_or(pos + 8)?.1;
        pos = bytes.len() - rest.len();
    }
    Ok(())
}

/// An owned metadata value, for [`crate::GgufWriter`].
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// A string.
    Str(String),
    /// An array.
    Array(OwnedArray),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

/// An owned array for [`crate::GgufWriter`]; one variant per element type (no nesting).
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // each variant is its element type
pub enum OwnedArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl OwnedArray {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            OwnedArray::U8(_) => ValueType::U8,
            OwnedArray::I8(_) => ValueType::I8,
            OwnedArray::U16(_) => ValueType::U16,
            OwnedArray::I16(_) => ValueType::I16,
            OwnedArray::U32(_) => ValueType::U32,
            OwnedArray::I32(_) => ValueType::I32,
            OwnedArray::F32(_) => ValueType::F32,
            OwnedArray::Bool(_) => ValueType::Bool,
            OwnedArray::Str(_) => ValueType::Str,
            OwnedArray::U64(_) => ValueType::U64,
            OwnedArray::I64(_) => ValueType::I64,
            OwnedArray::F64(_) => ValueType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            OwnedArray::U8(v) => v.len(),
            OwnedArray::I8(v) => v.len(),
            OwnedArray::U16(v) => v.len(),
            OwnedArray::I16(v) => v.len(),
            OwnedArray::U32(v) => v.len(),
            OwnedArray::I32(v) => v.len(),
            OwnedArray::F32(v) => v.len(),
            OwnedArray::Bool(v) => v.len(),
            OwnedArray::Str(v) => v.len(),
            OwnedArray::U64(v) => v.len(),
            OwnedArray::I64(v) => v.len(),
            OwnedArray::F64(v) => v.len(),
        }
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OwnedValue {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::U8(_) => ValueType::U8,
            OwnedValue::I8(_) => ValueType::I8,
            OwnedValue::U16(_) => ValueType::U16,
            OwnedValue::I16(_) => ValueType::I16,
            OwnedValue::U32(_) => ValueType::U32,
            OwnedValue::I32(_) => ValueType::I32,
            OwnedValue::F32(_) => ValueType::F32,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::Str(_) => ValueType::Str,
            OwnedValue::Array(_) => ValueType::Array,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::F64(_) => ValueType::F64,
        }
    }
}

macro_rules! owned_from {
    ($($t:ty => $v:ident, $a:ident;)*) => {$(
        impl From<$t> for OwnedValue {
            fn from(v: $t) -> Self { OwnedValue::$v(v) }
        }
        impl From<Vec<$t>> for OwnedValue {
            fn from(v: Vec<$t>) -> Self { OwnedValue::Array(OwnedArray::$a(v)) }
        }
        impl From<&[$t]> for OwnedValue {
            fn from(v: &[$t]) -> Self { OwnedValue::Array(OwnedArray::$a(v.to_vec())) }
        }
    )*};
}

owned_from! {
    u8 => U8, U8;
    i8 => I8, I8;
    u16 => U16, U16;
    i16 => I16, I16;
    u32 => U32, U32;
    i32 => I32, I32;
    f32 => F32, F32;
    bool => Bool, Bool;
    u64 => U64, U64;
    i64 => I64, I64;
    f64 => F64, F64;
    String => Str, Str;
}

impl From<&str> for OwnedValue {
    fn from(v: &str) -> Self {
        OwnedValue::Str(v.to_owned())
    }
}

impl From<&[&str]> for OwnedValue {
    fn from(v: &[&str]) -> Self {
        OwnedValue::Array(OwnedArray::Str(v.iter().map(|s| (*s).to_owned()).collect()))
    }
}

impl From<Vec<&str>> for OwnedValue {
    fn from(v: Vec<&str>) -> Self {
        v.as_slice().into()
    }
}

impl From<OwnedArray> for OwnedValue {
    fn from(v: OwnedArray) -> Self {
        OwnedValue::Array(v)
    }
}

/// Error helper: a `WrongType` for `key`.
pub(crate) fn wrong_type(key: &str, expected: &'static str, found: &Value<'_>) -> GgufError {
    GgufError::WrongType {
        key: key.to_owned(),
        expected,
        found: found.type_name(),
    }
}
