//! Zero-copy reader and streaming writer for GGUF model files, hardened against malformed input.
//!
//! [`Gguf`] parses and validates a file's header once and then serves metadata values and tensor
//! data as views into the bytes (a memory map from [`Gguf::open`], or any `AsRef<[u8]>`).
//! [`GgufWriter`] writes files in the layout of llama.cpp's gguf-py writer, streaming tensor data.
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
    Gguf, TensorInfo, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_ALIGNMENT, MAX_DIMS,
    MAX_TENSOR_NAME,
};
pub use types::{quantize_q8_0, quantize_q8_0_into, BlockQ8_0, GgmlType, ALL_GGML_TYPES, QK8_0};
pub use value::{
    ArrayElement, ArrayIter, ArrayValue, ArrayView, OwnedArray, OwnedValue, StrArray, Value,
    ValueType,
};
pub use writer::GgufWriter;
