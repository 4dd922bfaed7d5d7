//! The one error type of this crate.

use std::path::PathBuf;

use crate::types::GgmlType;

/// Everything that can go wrong while reading, validating, writing or converting GGUF data.
///
/// Every variant carries the values needed to understand the problem (offsets are byte offsets from
/// the start of the file). Malformed input never panics: it ends up in one of these variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path given to [`crate::Gguf::open`].
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The path names something other than a regular file (a directory, a FIFO, a device):
    /// it is refused before it is opened, so that a FIFO cannot block and a device is not read.
    #[error("{path} is {kind}, not a GGUF file")]
    NotAFile {
        /// The path given to [`crate::Gguf::open`].
        path: PathBuf,
        /// What it is instead ("a directory", "a FIFO (named pipe)", ...).
        kind: &'static str,
    },

    /// An I/O error while writing.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The file ends before a field that must be there.
    #[error("file truncated: {what} at offset {offset} needs {needed} bytes but the file is {file_len} bytes long")]
    Truncated {
        /// Which field was being read.
        what: &'static str,
        /// Where the field starts.
        offset: u64,
        /// How many bytes the field needs.
        needed: u64,
        /// The length of the whole file.
        file_len: u64,
    },

    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// The first four bytes of the file.
        found: [u8; 4],
    },

    /// The version is not 2 or 3.
    #[error("unsupported GGUF version {version} (supported: 2 and 3)")]
    UnsupportedVersion {
        /// The version field as read (little-endian).
        version: u32,
    },

    /// The version field reads as 2 or 3 only when byte-swapped: a big-endian GGUF file.
    #[error("big-endian GGUF file (version field {version:#010x} is byte-swapped); only little-endian files are supported")]
    ByteSwapped {
        /// The version field as read (little-endian).
        version: u32,
    },

    /// A count read from the file cannot possibly fit in the rest of the file.
    #[error("{what} count {count} is larger than the file can hold (at most {max})")]
    CountTooLarge {
        /// What is counted (`"tensor"`, `"metadata key"`, `"array element"`).
        what: &'static str,
        /// The count read from the file.
        count: u64,
        /// The largest count the remaining bytes could hold.
        max: u64,
    },

    /// A string's length runs past the end of the file.
    #[error("string at offset {offset} has length {len} but only {remaining} bytes remain")]
    StringTooLong {
        /// Where the length prefix starts.
        offset: u64,
        /// The declared length.
        len: u64,
        /// Bytes left in the file after the length prefix.
        remaining: u64,
    },

    /// A metadata key or a tensor name is the empty string (nothing could look it up).
    #[error("{what} at offset {offset} is empty")]
    EmptyName {
        /// `"metadata key"` or `"tensor name"`.
        what: &'static str,
        /// Where the name's length prefix starts (0 for a name given to the writer).
        offset: u64,
    },

    /// A string is not valid UTF-8.
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: u64,
    },

    /// A metadata value type id is not one of the 13 GGUF types.
    #[error("unknown metadata value type {type_id} at offset {offset} (known: 0..=12)")]
    UnknownValueType {
        /// The type id read.
        type_id: u32,
        /// Where the type id starts.
        offset: u64,
    },

    /// An array whose elements are arrays; ggml rejects these and so does this crate.
    #[error("metadata key {key:?}: nested arrays are not supported (ggml rejects them too)")]
    NestedArray {
        /// The key holding the array.
        key: String,
    },

    /// A boolean value that is neither 0 nor 1.
    #[error("metadata key {key:?}: boolean byte {byte} at offset {offset} is neither 0 nor 1")]
    InvalidBool {
        /// The key holding the value.
        key: String,
        /// The byte read.
        byte: u8,
        /// Where the byte is.
        offset: u64,
    },

    /// The same metadata key appears twice.
    #[error("duplicate metadata key {key:?}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },

    /// `general.alignment` is 0, not a power of two or larger than 1 MiB.
    #[error("invalid general.alignment {alignment}: must be a power of two between 1 and 1 MiB")]
    InvalidAlignment {
        /// The value found.
        alignment: u64,
    },

    /// `general.alignment` is not a `u32`.
    #[error("general.alignment must be of type u32, found {found}")]
    AlignmentWrongType {
        /// The type found.
        found: &'static str,
    },

    /// Two tensors share a name.
    #[error("duplicate tensor name {name:?}")]
    DuplicateTensor {
        /// The repeated name.
        name: String,
    },

    /// A tensor name is longer than ggml allows (63 bytes).
    #[error("tensor name {name:?} is {len} bytes long, the limit is {max}")]
    TensorNameTooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit (`GGML_MAX_NAME - 1`).
        max: usize,
    },

    /// A tensor has more than 4 dimensions.
    #[error("tensor {name:?} has {n_dims} dimensions, at most {max} are supported")]
    TooManyDims {
        /// The tensor name.
        name: String,
        /// The number of dimensions read.
        n_dims: u32,
        /// The limit (`GGML_MAX_DIMS`).
        max: u32,
    },

    /// A tensor's element count or byte size overflows (or a dimension exceeds `i64::MAX`).
    #[error("tensor {name:?}: shape {ne:?} overflows")]
    ShapeOverflow {
        /// The tensor name.
        name: String,
        /// The shape, fastest dimension first.
        ne: Vec<u64>,
    },

    /// A tensor's first dimension is not a multiple of its type's block size.
    #[error("tensor {name:?}: ne[0] = {ne0} is not a multiple of the {ggml_type} block size {block_size}")]
    NotBlockMultiple {
        /// The tensor name.
        name: String,
        /// The first dimension.
        ne0: u64,
        /// The tensor type.
        ggml_type: GgmlType,
        /// The type's block size.
        block_size: u64,
    },

    /// A tensor type id that ggml does not define.
    #[error("unknown ggml type id {id}")]
    UnknownGgmlType {
        /// The id read.
        id: u32,
    },

    /// A tensor type id that ggml once defined and has removed.
    #[error("ggml type id {id} ({name}) was removed from ggml and is not supported")]
    RemovedGgmlType {
        /// The id read.
        id: u32,
        /// The name it had.
        name: &'static str,
    },

    /// A tensor offset is not a multiple of the alignment.
    #[error("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    UnalignedTensorOffset {
        /// The tensor name.
        name: String,
        /// The offset, relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },

    /// A tensor's data lies (partly) past the end of the file.
    #[error("tensor {name:?}: data at offset {offset} with {size} bytes runs past the end of the data section ({data_len} bytes)")]
    TensorOutOfBounds {
        /// The tensor name.
        name: String,
        /// The offset, relative to the data section.
        offset: u64,
        /// The tensor's byte size.
        size: u64,
        /// The length of the data section.
        data_len: u64,
    },

    /// Two tensors' data overlap.
    #[error("tensors {first:?} and {second:?} overlap")]
    TensorsOverlap {
        /// The tensor with the lower offset.
        first: String,
        /// The tensor that starts inside it.
        second: String,
    },

    /// The data section would start past the end of the file although there are tensors.
    #[error("data section starts at {data_offset} but the file is {file_len} bytes long")]
    DataPastEnd {
        /// Where the data section starts.
        data_offset: u64,
        /// The length of the file.
        file_len: u64,
    },

    /// A metadata key is absent.
    #[error("metadata key {key:?} is missing")]
    MissingKey {
        /// The key asked for.
        key: String,
    },

    /// A metadata key has another type than the one asked for.
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongType {
        /// The key asked for.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// The type in the file.
        found: &'static str,
    },

    /// No tensor has this name.
    #[error("tensor {name:?} not found")]
    TensorNotFound {
        /// The name asked for.
        name: String,
    },

    /// A typed tensor view was asked for a tensor of another type.
    #[error("tensor {name:?} has type {found}, expected {expected}")]
    TensorTypeMismatch {
        /// The tensor name.
        name: String,
        /// The type asked for.
        expected: GgmlType,
        /// The tensor's type.
        found: GgmlType,
    },

    /// The tensor's data is not aligned in memory for a zero-copy view of its element type.
    #[error("tensor {name:?}: data is not {align}-byte aligned in memory; use dequantize() or load the file into an aligned buffer")]
    Misaligned {
        /// The tensor name.
        name: String,
        /// The alignment required.
        align: usize,
    },

    /// Dequantisation of this tensor type is not implemented.
    #[error("tensor {name:?}: dequantising {ggml_type} is not supported")]
    UnsupportedDequantize {
        /// The tensor name.
        name: String,
        /// The tensor type.
        ggml_type: GgmlType,
    },

    /// Dequantisation of this type is not implemented (for [`crate::dequantize_row`]).
    #[error("dequantising {ggml_type} is not supported")]
    UnsupportedType {
        /// The type.
        ggml_type: GgmlType,
    },

    /// A byte length that is not a whole number of blocks of the type.
    #[error("{len} bytes are not a whole number of {ggml_type} blocks of {type_size} bytes")]
    DataLength {
        /// The type.
        ggml_type: GgmlType,
        /// The byte length given.
        len: u64,
        /// Bytes per block.
        type_size: u64,
    },

    /// A quantiser input length is not a multiple of the block size, or the output has the wrong length.
    #[error(
        "quantising {ggml_type}: {len} input values do not fill {blocks} blocks of {block_size}"
    )]
    QuantizeLength {
        /// The target type.
        ggml_type: GgmlType,
        /// Number of input values.
        len: usize,
        /// Number of output blocks provided (or needed).
        blocks: usize,
        /// The block size.
        block_size: usize,
    },

    /// A quantiser input value is NaN or infinite.
    #[error("quantising {ggml_type}: value {value} at index {index} is not finite")]
    NonFinite {
        /// The target type.
        ggml_type: GgmlType,
        /// Index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },

    /// Writer: metadata or tensor infos were added after tensor data writing began.
    #[error("writer: cannot declare {what} after tensor data writing has started")]
    WriterSealed {
        /// What was being declared.
        what: &'static str,
    },

    /// Writer: tensor data written out of the declared order, or for an undeclared tensor.
    #[error("writer: expected data for tensor {expected:?}, got {found:?}")]
    TensorOrder {
        /// The next declared tensor (or `None` when all have been written).
        expected: Option<String>,
        /// The tensor whose data was given.
        found: String,
    },

    /// Writer: the data given for a tensor has the wrong byte length.
    #[error("writer: tensor {name:?} needs {expected} bytes of data, got {found}")]
    TensorDataLength {
        /// The tensor name.
        name: String,
        /// Bytes implied by its type and shape.
        expected: u64,
        /// Bytes given.
        found: u64,
    },

    /// Writer: `finish` was called before every declared tensor's data was written.
    #[error("writer: tensor {name:?} was declared but its data was never written")]
    MissingTensorData {
        /// The first tensor without data.
        name: String,
    },

    /// Writer: a version other than 2 or 3 was requested.
    #[error("writer: cannot write GGUF version {version} (supported: 2 and 3)")]
    WriterVersion {
        /// The version asked for.
        version: u32,
    },
}
