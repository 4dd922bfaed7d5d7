//! Parsing and validation of a GGUF file, and the [`Gguf`] handle.
//!
//! The parser walks the header once, checks every count, length, offset and shape against the
//! bytes that are really there (checked arithmetic, never an allocation sized by an unchecked
//! count), validates every string as UTF-8, and records only offsets and ranges. Values and
//! tensor data are then served straight from the bytes, without copies.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use half::{bf16, f16};
use zerocopy::FromBytes;

use crate::types::{BlockQ8_0, GgmlType};
use crate::value::{
    check_strs, read_scalar, wrong_type, ArrayElement, ArrayValue, ArrayView, StrArray, Value,
    ValueType,
};
use crate::GgufError;

/// `GGUF` in file order.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest accepted `general.alignment` (1 MiB).
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// Longest tensor name in bytes (`GGML_MAX_NAME - 1`).
pub const MAX_TENSOR_NAME: usize = 63;
/// Key whose `u32` value sets the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Smallest encoding of one metadata entry: key length, empty key, type, one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Where a value sits in the file.
#[derive(Clone, Debug)]
enum RawValue {
    /// A fixed-size scalar starting at `pos`.
    Scalar { ty: ValueType, pos: usize },
    /// A string's bytes.
    Str { range: Range<usize> },
    /// An array's elements.
    Array {
        elem: ValueType,
        len: usize,
        range: Range<usize>,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    key: Box<str>,
    value: RawValue,
}

/// A tensor's description from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (at most 63 bytes).
    pub name: String,
    /// The element type.
    pub ggml_type: GgmlType,
    /// The shape, fastest-varying dimension first (ggml's `ne`), 0 to 4 entries.
    pub ne: Vec<u64>,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements (product of `ne`; checked at parse time not to overflow, and
    /// saturating for hand-made infos that would).
    pub fn n_elements(&self) -> u64 {
        self.ne
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Number of dimensions.
    pub fn n_dims(&self) -> usize {
        self.ne.len()
    }
}

#[derive(Clone, Debug)]
struct Header {
    version: u32,
    alignment: u64,
    data_offset: u64,
    entries: Vec<Entry>,
    key_index: HashMap<Box<str>, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// A parsed GGUF file that owns (or borrows, with `B = &[u8]`) its bytes.
///
/// The header holds only offsets and ranges; metadata values and tensor data are views into the
/// bytes. Construction validates the whole header and every tensor's extent, so accessors do not
/// fail on well-typed requests.
pub struct Gguf<B: AsRef<[u8]>> {
    bytes: B,
    header: Header,
}

impl<B: AsRef<[u8]>> std::fmt::Debug for Gguf<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.header.version)
            .field("len", &self.bytes().len())
            .field("metadata", &self.header.entries.len())
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

impl Gguf<memmap2::Mmap> {
    /// Memory-maps the file at `path` and parses its header; the file is never read as a whole.
    /// A path that is not a regular file (a directory, a FIFO, a device) is refused with
    /// [`GgufError::NotAFile`] without being opened.
    ///
    /// Like every memory-mapped loader, this assumes the file is not truncated or rewritten by
    /// another process while the returned value is alive (doing so may crash the process).
    /// Use [`Gguf::from_bytes`] with a `Vec<u8>` to avoid that assumption.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let open_err = |source| GgufError::Open {
            path: path.to_owned(),
            source,
        };
        // Only a regular file: opening a FIFO would wait for a writer, and a device or a
        // directory is no model. Checked by path before opening (so a FIFO is never opened) and
        // again on the opened file (in case the path changed in between).
        let regular = |meta: std::fs::Metadata| {
            if meta.is_file() {
                Ok(())
            } else {
                Err(GgufError::NotAFile {
                    path: path.to_owned(),
                    kind: file_kind(&meta.file_type()),
                })
            }
        };
        regular(std::fs::metadata(path).map_err(open_err)?)?;
        let file = std::fs::File::open(path).map_err(open_err)?;
        regular(file.metadata().map_err(open_err)?)?;
        // SAFETY: the map is read-only. Mapping a file is only unsound if another process
        // truncates or rewrites it while it is mapped; that is outside this program's control and is
        // the documented contract of `Gguf::open` (the same one every mmap-based loader has).
        // Nothing here relies on the contents staying valid for memory safety beyond that.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(open_err)?;
        Self::from_bytes(map)
    }
}

/// "a directory", "a FIFO (named pipe)", ...: what a path that is not a regular file names (for
/// error messages about paths that must be regular files).
pub fn file_kind(ty: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ty.is_char_device() {
            return "a character device";
        }
        if ty.is_block_device() {
            return "a block device";
        }
        if ty.is_socket() {
            return "a socket";
        }
    }
    if ty.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

impl<B: AsRef<[u8]>> Gguf<B> {
    /// Parses and validates `bytes` as a GGUF file.
    pub fn from_bytes(bytes: B) -> Result<Self, GgufError> {
        let header = parse(bytes.as_ref())?;
        Ok(Gguf { bytes, header })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Gives back the byte container.
    pub fn into_inner(self) -> B {
        self.bytes
    }

    /// The byte container (for example the memory map, to advise the kernel about its pages).
    pub fn inner(&self) -> &B {
        &self.bytes
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The alignment of the data section and of tensor offsets.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Offset of the data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// Number of metadata entries.
    pub fn metadata_len(&self) -> usize {
        self.header.entries.len()
    }

    /// The metadata entries in file order.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&str, Value<'_>)> + '_ {
        let bytes = self.bytes();
        self.header
            .entries
            .iter()
            .map(move |e| (&*e.key, value_at(bytes, &e.value)))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        let &i = self.header.key_index.get(key)?;
        let e = self.header.entries.get(i)?;
        Some(value_at(self.bytes(), &e.value))
    }

    fn require(&self, key: &str) -> Result<Value<'_>, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    /// The `u32` value of `key`.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        match self.require(key)? {
            Value::U32(v) => Ok(v),
            v => Err(wrong_type(key, "u32", &v)),
        }
    }

    /// The `u64` value of `key`.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        match self.require(key)? {
            Value::U64(v) => Ok(v),
            v => Err(wrong_type(key, "u64", &v)),
        }
    }

    /// The `i32` value of `key`.
    pub fn get_i32(&self, key: &str) -> Result<i32, GgufError> {
        match self.require(key)? {
            Value::I32(v) => Ok(v),
            v => Err(wrong_type(key, "i32", &v)),
        }
    }

    /// The `f32` value of `key`.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.require(key)? {
            Value::F32(v) => Ok(v),
            v => Err(wrong_type(key, "f32", &v)),
        }
    }

    /// The `bool` value of `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.require(key)? {
            Value::Bool(v) => Ok(v),
            v => Err(wrong_type(key, "bool", &v)),
        }
    }

    /// The string value of `key`.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            Value::Str(v) => Ok(v),
            v => Err(wrong_type(key, "string", &v)),
        }
    }

    /// The value of `key` as an unsigned integer, accepting any integer type whose value is
    /// non-negative (files written by different tools disagree on integer widths).
    pub fn get_uint(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| wrong_type(key, "non-negative integer", &v))
    }

    /// The array value of `key`, of any element type.
    pub fn get_array(&self, key: &str) -> Result<ArrayValue<'_>, GgufError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(wrong_type(key, "array", &v)),
        }
    }

    /// A zero-copy view of the numeric array `key` with element type `T`.
    pub fn get_array_of<T: ArrayElement>(&self, key: &str) -> Result<ArrayView<'_, T>, GgufError> {
        let v = self.require(key)?;
        v.as_array()
            .and_then(|a| a.as_view::<T>())
            .ok_or_else(|| wrong_type(key, T::TYPE.array_name(), &v))
    }

    /// A zero-copy view of the `f32` array `key`.
    pub fn get_f32_array(&self, key: &str) -> Result<ArrayView<'_, f32>, GgufError> {
        self.get_array_of::<f32>(key)
    }

    /// A zero-copy view of the `i32` array `key`.
    pub fn get_i32_array(&self, key: &str) -> Result<ArrayView<'_, i32>, GgufError> {
        self.get_array_of::<i32>(key)
    }

    /// The strings of the string array `key`.
    pub fn get_str_array(&self, key: &str) -> Result<StrArray<'_>, GgufError> {
        let v = self.require(key)?;
        v.as_array()
            .and_then(|a| a.as_strs())
            .ok_or_else(|| wrong_type(key, "array of string", &v))
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    /// All tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The tensor called `name` (hash lookup).
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        let &i = self.header.tensor_index.get(name)?;
        self.header.tensors.get(i)
    }

    /// The tensor called `name`, or [`GgufError::TensorNotFound`].
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::TensorNotFound {
            name: name.to_owned(),
        })
    }

    /// The raw bytes of a tensor's data (empty if `t` does not describe this file's data).
    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        let bytes = self.bytes();
        let range = (|| {
            let start = usize::try_from(self.header.data_offset.checked_add(t.offset)?).ok()?;
            let end = start.checked_add(usize::try_from(t.size).ok()?)?;
            bytes.get(start..end)
        })();
        range.unwrap_or(&[])
    }

    fn typed<T: FromBytes + zerocopy::Immutable>(
        &self,
        t: &TensorInfo,
        ty: GgmlType,
    ) -> Result<&[T], GgufError> {
        if t.ggml_type != ty {
            return Err(GgufError::TensorTypeMismatch {
                name: t.name.clone(),
                expected: ty,
                found: t.ggml_type,
            });
        }
        <[T]>::ref_from_bytes(self.tensor_bytes(t)).map_err(|_| GgufError::Misaligned {
            name: t.name.clone(),
            align: std::mem::align_of::<T>(),
        })
    }

    /// The data of an F32 tensor as `&[f32]`, without copying.
    pub fn tensor_f32(&self, t: &TensorInfo) -> Result<&[f32], GgufError> {
        self.typed(t, GgmlType::F32)
    }

    /// The data of an F16 tensor, without copying.
    pub fn tensor_f16(&self, t: &TensorInfo) -> Result<&[f16], GgufError> {
        self.typed(t, GgmlType::F16)
    }

    /// The data of a BF16 tensor, without copying.
    pub fn tensor_bf16(&self, t: &TensorInfo) -> Result<&[bf16], GgufError> {
        self.typed(t, GgmlType::BF16)
    }

    /// The blocks of a Q8_0 tensor, without copying.
    pub fn tensor_q8_0(&self, t: &TensorInfo) -> Result<&[BlockQ8_0], GgufError> {
        self.typed(t, GgmlType::Q8_0)
    }

    /// Dequantises a tensor to `f32` (works at any memory alignment).
    ///
    /// Supported: F32, F16, BF16, F64, I8, I16, I32, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1.
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>, GgufError> {
        crate::dequant::dequantize(t, self.tensor_bytes(t))
    }
}

fn value_at<'a>(bytes: &'a [u8], raw: &RawValue) -> Value<'a> {
    match raw {
        RawValue::Scalar { ty, pos } => bytes
            .get(*pos..)
            .and_then(|b| read_scalar(*ty, b))
            .unwrap_or(Value::U8(0)),
        RawValue::Str { range } => Value::Str(
            bytes
                .get(range.clone())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
        ),
        RawValue::Array { elem, len, range } => Value::Array(ArrayValue {
            elem: *elem,
            len: *len,
            bytes: bytes.get(range.clone()).unwrap_or(&[]),
        }),
    }
}

/// A bounds-checked reader over the file bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn file_len(&self) -> u64 {
        self.buf.len() as u64
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos.min(self.buf.len())) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let err = || GgufError::Truncated {
            what,
            offset: self.pos as u64,
            needed: n,
            file_len: self.file_len(),
        };
        let n_us = usize::try_from(n).map_err(|_| err())?;
        let end = self.pos.checked_add(n_us).ok_or_else(err)?;
        let s = self.buf.get(self.pos..end).ok_or_else(err)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a length-prefixed UTF-8 string and returns the range of its bytes.
    fn string(&mut self, what: &'static str) -> Result<Range<usize>, GgufError> {
        let range = self.string_bytes(what)?;
        if self
            .buf
            .get(range.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .is_none()
        {
            return Err(GgufError::InvalidUtf8 {
                offset: range.start as u64,
            });
        }
        Ok(range)
    }

    /// Reads a length-prefixed string without checking its UTF-8, and returns the range of its bytes.
    fn string_bytes(&mut self, what: &'static str) -> Result<Range<usize>, GgufError> {
        let len_at = self.pos as u64;
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(GgufError::StringTooLong {
                offset: len_at,
                len,
                remaining: self.remaining(),
            });
        }
        let start = self.pos;
        self.take(len, what)?;
        Ok(start..self.pos)
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in the rest of the file.
    fn check_count(
        &self,
        what: &'static str,
        count: u64,
        min_size: u64,
    ) -> Result<usize, GgufError> {
        let max = self.remaining() / min_size.max(1);
        if count > max {
            return Err(GgufError::CountTooLarge { what, count, max });
        }
        usize::try_from(count).map_err(|_| GgufError::CountTooLarge { what, count, max })
    }
}

fn str_at<'a>(buf: &'a [u8], r: &Range<usize>) -> &'a str {
    buf.get(r.clone())
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

fn parse(buf: &[u8]) -> Result<Header, GgufError> {
    let mut c = Cursor { buf, pos: 0 };
    let magic: [u8; 4] = c.array("magic")?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        v if matches!(v.swap_bytes(), 2 | 3) => return Err(GgufError::ByteSwapped { version }),
        v => return Err(GgufError::UnsupportedVersion { version: v }),
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    // Every entry needs at least MIN_*_BYTES bytes, so these caps bound every allocation by the
    // file size before anything is allocated.
    let n_kv = c.check_count("metadata key", n_kv, MIN_KV_BYTES)?;
    let n_tensors = c.check_count("tensor", n_tensors, MIN_TENSOR_INFO_BYTES)?;

    let mut entries = Vec::with_capacity(n_kv);
    let mut key_index = HashMap::with_capacity(n_kv);
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..n_kv {
        let key_range = c.string("metadata key")?;
        if key_range.is_empty() {
            return Err(GgufError::EmptyName {
                what: "metadata key",
                offset: key_range.start as u64 - 8,
            });
        }
        let key: Box<str> = str_at(buf, &key_range).into();
        let value = parse_value(&mut c, &key)?;
        if &*key == ALIGNMENT_KEY {
            alignment = match value {
                RawValue::Scalar {
                    ty: ValueType::U32,
                    pos,
                } => match read_scalar(ValueType::U32, buf.get(pos..).unwrap_or(&[])) {
                    Some(Value::U32(a)) => u64::from(a),
                    _ => 0,
                },
                ref other => {
                    return Err(GgufError::AlignmentWrongType {
                        found: match other {
                            RawValue::Scalar { ty, .. } => ty.name(),
                            RawValue::Str { .. } => "string",
                            RawValue::Array { elem, .. } => elem.array_name(),
                        },
                    })
                }
            };
            if alignment == 0 || !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
                return Err(GgufError::InvalidAlignment { alignment });
            }
        }
        if key_index.insert(key.clone(), i).is_some() {
            return Err(GgufError::DuplicateKey { key: key.into() });
        }
        entries.push(Entry { key, value });
    }

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
    let mut tensor_index = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name_range = c.string("tensor name")?;
        if name_range.is_empty() {
            return Err(GgufError::EmptyName {
                what: "tensor name",
                offset: name_range.start as u64 - 8,
            });
        }
        let name = str_at(buf, &name_range).to_owned();
        if name.len() > MAX_TENSOR_NAME {
            return Err(GgufError::TensorNameTooLong {
                len: name.len(),
                name,
                max: MAX_TENSOR_NAME,
            });
        }
        let n_dims = c.u32("tensor n_dims")?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                name,
                n_dims,
                max: MAX_DIMS,
            });
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64("tensor dimension")?);
        }
        let ggml_type = GgmlType::try_from(c.u32("tensor type")?)?;
        let offset = c.u64("tensor offset")?;
        // ggml stores dimensions as int64_t: each must fit, and so must the element count.
        let size = crate::types::checked_tensor_size(&name, ggml_type, &ne)?;
        if offset % alignment != 0 {
            return Err(GgufError::UnalignedTensorOffset {
                name,
                offset,
                alignment,
            });
        }
        if tensor_index.insert(name.clone(), i).is_some() {
            return Err(GgufError::DuplicateTensor { name });
        }
        tensors.push(TensorInfo {
            name,
            ggml_type,
            ne,
            offset,
            size,
        });
    }

    let header_end = c.pos as u64;
    let data_offset = header_end
        .checked_next_multiple_of(alignment)
        .unwrap_or(u64::MAX);
    let file_len = c.file_len();
    if !tensors.is_empty() && data_offset > file_len {
        return Err(GgufError::DataPastEnd {
            data_offset,
            file_len,
        });
    }
    let data_len = file_len.saturating_sub(data_offset);
    for t in &tensors {
        if t.offset
            .checked_add(t.size)
            .is_none_or(|end| end > data_len)
        {
            return Err(GgufError::TensorOutOfBounds {
                name: t.name.clone(),
                offset: t.offset,
                size: t.size,
                data_len,
            });
        }
    }
    // Overlap check: sort by offset, each must end before the next starts (empty tensors never
    // overlap anything).
    let mut order: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].size > 0)
        .collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        // Bounds were checked above, so this addition cannot overflow.
        if a.offset + a.size > b.offset {
            return Err(GgufError::TensorsOverlap {
                first: a.name.clone(),
                second: b.name.clone(),
            });
        }
    }

    Ok(Header {
        version,
        alignment,
        data_offset,
        entries,
        key_index,
        tensors,
        tensor_index,
    })
}

fn parse_value(c: &mut Cursor<'_>, key: &str) -> Result<RawValue, GgufError> {
    let type_at = c.pos as u64;
    let type_id = c.u32("metadata value type")?;
    let ty = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType {
        type_id,
        offset: type_at,
    })?;
    match ty {
        ValueType::Str => Ok(RawValue::Str {
            range: c.string("metadata string value")?,
        }),
        ValueType::Array => {
            let elem_at = c.pos as u64;
            let elem_id = c.u32("array element type")?;
            let elem = ValueType::from_id(elem_id).ok_or(GgufError::UnknownValueType {
                type_id: elem_id,
                offset: elem_at,
            })?;
            let count = c.u64("array length")?;
            let start = c.pos;
            match elem {
                ValueType::Array => Err(GgufError::NestedArray {
                    key: key.to_owned(),
                }),
                ValueType::Str => {
                    let len = c.check_count("array element", count, 8)?;
                    for _ in 0..len {
                        c.string_bytes("array string element")?;
                    }
                    // The lengths fit; now the UTF-8 of all strings, validated in long runs.
                    let body = c.buf.get(start..c.pos).unwrap_or(&[]);
                    check_strs(body, len).map_err(|at| GgufError::InvalidUtf8 {
                        offset: (start + at) as u64,
                    })?;
                    Ok(RawValue::Array {
                        elem,
                        len,
                        range: start..c.pos,
                    })
                }
                _ => {
                    let size = elem.fixed_size().unwrap_or(1) as u64;
                    let len = c.check_count("array element", count, size)?;
                    // len * size <= remaining, so this cannot overflow.
                    let body = c.take(len as u64 * size, "array elements")?;
                    if elem == ValueType::Bool {
                        if let Some(i) = body.iter().position(|&b| b > 1) {
                            return Err(GgufError::InvalidBool {
                                key: key.to_owned(),
                                byte: body[i],
                                offset: (start + i) as u64,
                            });
                        }
                    }
                    Ok(RawValue::Array {
                        elem,
                        len,
                        range: start..c.pos,
                    })
                }
            }
        }
        _ => {
            let pos = c.pos;
            let size = ty.fixed_size().unwrap_or(1) as u64;
            let b = c.take(size, "metadata value")?;
            if ty == ValueType::Bool && b[0] > 1 {
                return Err(GgufError::InvalidBool {
                    key: key.to_owned(),
                    byte: b[0],
                    offset: pos as u64,
                });
            }
            Ok(RawValue::Scalar { ty, pos })
        }
    }
}
