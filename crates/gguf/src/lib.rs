//! Zero-copy reader and streaming writer for GGUF model files, hardened against malformed input.
//!
//! GGUF is the single-file model format of ggml and llama.cpp: a header of typed key/value
//! metadata and tensor descriptions, then the tensor data, each tensor aligned. This crate gives
//!
//! * [`Gguf`], a reader that parses and validates the header once and then serves metadata values,
//!   numeric and string arrays, and tensor data as *views into the bytes* — a memory map from
//!   [`Gguf::open`] or any `AsRef<[u8]>` through [`Gguf::from_bytes`]. Opening a 330 MB model takes
//!   a few milliseconds (the 262,144-entry vocabulary is walked once to validate it) and
//!   reads nothing of the tensor data;
//! * [`GgufWriter`], a streaming writer whose output is byte-identical to llama.cpp's gguf-py
//!   `GGUFWriter` for the same inputs (tested against a file gguf-py wrote);
//! * [`quantize_q8_0`], byte-identical to gguf-py's `quants.py`, the [`BlockQ8_0`] layout, and
//!   reference dequantisation ([`Gguf::dequantize`], [`dequantize_row`]) of the common types.
//!
//! # Untrusted input
//!
//! Every file is treated as hostile. Parsing never panics, never reads outside the bytes, and never
//! sizes an allocation from a count it has not first checked against the bytes that remain. Each
//! problem is its own [`GgufError`] variant with the offending values: truncation of any field, bad
//! magic, versions other than 2 and 3 (a byte-swapped version is reported as a big-endian file),
//! counts the file cannot hold, strings or arrays running past the end, invalid UTF-8, unknown
//! value types, **nested arrays** (ggml rejects arrays of arrays; so does this crate, with
//! [`GgufError::NestedArray`]), booleans other than 0/1, duplicate keys, a `general.alignment`
//! that is not a `u32` power of two up to 1 MiB, duplicate or over-long (> 63 bytes) tensor
//! names, more than 4 dimensions, shapes whose element count or byte size overflows, `ne[0]` not a
//! multiple of the block size, unknown or removed ggml types, tensor offsets that are unaligned,
//! out of bounds or overlapping. The checks follow ggml's `gguf_init_from_file_impl` and add a few
//! (UTF-8, booleans, overlap instead of ggml's exact-packing rule, so files with gaps still load).
//!
//! # Zero-copy views
//!
//! Metadata arrays are viewed through zerocopy's little-endian types, which have alignment 1, so
//! [`ArrayView`] works wherever the array sits. Tensor views ([`Gguf::tensor_f32`],
//! [`Gguf::tensor_q8_0`], …) are real `&[f32]` / `&[BlockQ8_0]` slices: they need the data to be
//! aligned in memory, which a memory map (page-aligned base, 32-aligned offsets) guarantees; on a
//! misaligned buffer they return [`GgufError::Misaligned`] rather than copying. Only
//! little-endian targets are supported. The one `unsafe` block is the memory map itself.
//!
//! # Example
//!
//! ```
//! use gguf::{Gguf, GgufWriter, GgmlType, Value};
//!
//! # fn main() -> Result<(), gguf::GgufError> {
//! let mut w = GgufWriter::new(Vec::new());
//! w.add_str("general.architecture", "demo")?;
//! w.add_u32("demo.context_length", 2048)?;
//! w.add_str_array("tokenizer.ggml.tokens", ["<pad>", "a", "b"])?;
//! w.add_tensor("weight", GgmlType::F32, &[2, 3])?;
//! w.write_tensor_f32("weight", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
//! let bytes = w.finish()?;
//!
//! let file = Gguf::from_bytes(bytes)?;
//! assert_eq!(file.architecture()?, "demo");
//! assert_eq!(file.get("demo.context_length"), Some(Value::U32(2048)));
//! assert_eq!(file.get_str_array("tokenizer.ggml.tokens")?.collect::<Vec<_>>(), ["<pad>", "a", "b"]);
//! let t = file.require_tensor("weight")?;
//! assert_eq!(t.ne, [2, 3]);
//! assert_eq!(file.dequantize(t)?, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! # Ok(())
//! # }
//! ```

#[cfg(target_endian = "big")]
compile_error!("gguf: only little-endian targets are supported (tensor data is viewed in place)");

mod dequant;
mod error;
mod reader;
mod types;
mod value;
pub mod writer;

pub use dequant::dequantize_row;
pub use error::GgufError;
pub use half;
pub use reader::{
    file_kind, Gguf, TensorInfo, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_ALIGNMENT, MAX_DIMS,
    MAX_TENSOR_NAME,
};
pub use types::{quantize_q8_0, quantize_q8_0_into, BlockQ8_0, GgmlType, ALL_GGML_TYPES, QK8_0};
pub use value::{
    ArrayElement, ArrayIter, ArrayValue, ArrayView, OwnedArray, OwnedValue, StrArray, Value,
    ValueType,
};
pub use writer::GgufWriter;
