//! Streaming GGUF writer.
//!
//! Declare all metadata and tensor infos first, then write each tensor's data in declared order,
//! then call [`GgufWriter::finish`]. The header goes out when the first tensor's data (or
//! `finish`) arrives; tensor data is passed straight through to the sink, so a file of any size
//! is written without holding it in memory.
//!
//! The layout is the one llama.cpp's gguf-py `GGUFWriter` produces: header, metadata in insertion
//! order, tensor infos in declaration order, zero padding to the alignment, then each tensor's
//! data followed by zero padding to the alignment (so tensor `i` starts at the sum of the padded
//! sizes of the tensors before it, and the file ends on an alignment boundary). The alignment is
//! 32 unless a `general.alignment` `u32` is added.
//!
//! The writer issues many small writes; give it a [`std::io::BufWriter`] when writing to a file.

use std::collections::HashSet;
use std::io::Write;

use crate::reader::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_ALIGNMENT, MAX_DIMS, MAX_TENSOR_NAME,
};
use crate::types::{BlockQ8_0, GgmlType};
use crate::value::{OwnedArray, OwnedValue};
use crate::GgufError;

#[derive(Debug)]
struct PendingTensor {
    name: String,
    ggml_type: GgmlType,
    ne: Vec<u64>,
    size: u64,
}

/// A streaming GGUF writer (see the [module docs](self)).
#[derive(Debug)]
pub struct GgufWriter<W: Write> {
    out: W,
    version: u32,
    alignment: u64,
    kvs: Vec<(String, OwnedValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
    /// `Some(i)` once the header is written: index of the next tensor to receive data.
    next: Option<usize>,
    /// Bytes written so far.
    pos: u64,
}

impl<W: Write> GgufWriter<W> {
    /// A writer producing GGUF version 3 with alignment 32.
    pub fn new(out: W) -> Self {
        GgufWriter {
            out,
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            kvs: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
            next: None,
            pos: 0,
        }
    }

    /// A writer producing GGUF version `version` (2 or 3; the layout is the same).
    pub fn with_version(out: W, version: u32) -> Result<Self, GgufError> {
        if !(2..=3).contains(&version) {
            return Err(GgufError::WriterVersion { version });
        }
        let mut w = Self::new(out);
        w.version = version;
        Ok(w)
    }

    /// The alignment in effect (32, or the `general.alignment` added).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    fn check_open(&self, what: &'static str) -> Result<(), GgufError> {
        if self.next.is_some() {
            return Err(GgufError::WriterSealed { what });
        }
        Ok(())
    }

    /// Adds a metadata entry (kept in insertion order). Adding `general.alignment` as a `u32`
    /// changes the alignment; any other type for that key is rejected.
    pub fn add(
        &mut self,
        key: impl Into<String>,
        value: impl Into<OwnedValue>,
    ) -> Result<(), GgufError> {
        self.check_open("metadata")?;
        let key = key.into();
        let value = value.into();
        if key.is_empty() {
            return Err(GgufError::EmptyName {
                what: "metadata key",
                offset: 0,
            });
        }
        if key == ALIGNMENT_KEY {
            match value {
                OwnedValue::U32(a) => {
                    let a = u64::from(a);
                    if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                        return Err(GgufError::InvalidAlignment { alignment: a });
                    }
                    self.alignment = a;
                }
                ref v => {
                    return Err(GgufError::AlignmentWrongType {
                        found: match v {
                            OwnedValue::Array(a) => a.elem_type().array_name(),
                            v => v.value_type().name(),
                        },
                    })
                }
            }
        }
        if !self.keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey { key });
        }
        self.kvs.push((key, value));
        Ok(())
    }

    /// Adds a `u32` entry.
    pub fn add_u32(&mut self, key: impl Into<String>, v: u32) -> Result<(), GgufError> {
        self.add(key, v)
    }

    /// Adds an `i32` entry.
    pub fn add_i32(&mut self, key: impl Into<String>, v: i32) -> Result<(), GgufError> {
        self.add(key, v)
    }

    /// Adds a `u64` entry.
    pub fn add_u64(&mut self, key: impl Into<String>, v: u64) -> Result<(), GgufError> {
        self.add(key, v)
    }

    /// Adds an `f32` entry.
    pub fn add_f32(&mut self, key: impl Into<String>, v: f32) -> Result<(), GgufError> {
        self.add(key, v)
    }

    /// Adds a `bool` entry.
    pub fn add_bool(&mut self, key: impl Into<String>, v: bool) -> Result<(), GgufError> {
        self.add(key, v)
    }

    /// Adds a string entry.
    pub fn add_str(
        &mut self,
        key: impl Into<String>,
        v: impl Into<String>,
    ) -> Result<(), GgufError> {
        self.add(key, OwnedValue::Str(v.into()))
    }

    /// Adds an array-of-strings entry.
    pub fn add_str_array<S: Into<String>>(
        &mut self,
        key: impl Into<String>,
        v: impl IntoIterator<Item = S>,
    ) -> Result<(), GgufError> {
        let v = v.into_iter().map(Into::into).collect();
        self.add(key, OwnedArray::Str(v))
    }

    /// Adds an array-of-`f32` entry.
    pub fn add_f32_array(
        &mut self,
        key: impl Into<String>,
        v: impl Into<Vec<f32>>,
    ) -> Result<(), GgufError> {
        self.add(key, OwnedArray::F32(v.into()))
    }

    /// Adds an array-of-`i32` entry.
    pub fn add_i32_array(
        &mut self,
        key: impl Into<String>,
        v: impl Into<Vec<i32>>,
    ) -> Result<(), GgufError> {
        self.add(key, OwnedArray::I32(v.into()))
    }

    /// Declares a tensor: its name, type and shape (`ne`, fastest dimension first). Its data
    /// must later be written with [`GgufWriter::write_tensor_data`], in declaration order.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ggml_type: GgmlType,
        ne: &[u64],
    ) -> Result<(), GgufError> {
        self.check_open("tensor info")?;
        let name = name.into();
        if name.is_empty() {
            return Err(GgufError::EmptyName {
                what: "tensor name",
                offset: 0,
            });
        }
        if name.len() > MAX_TENSOR_NAME {
            return Err(GgufError::TensorNameTooLong {
                len: name.len(),
                name,
                max: MAX_TENSOR_NAME,
            });
        }
        if ne.len() > MAX_DIMS as usize {
            return Err(GgufError::TooManyDims {
                name,
                n_dims: ne.len() as u32,
                max: MAX_DIMS,
            });
        }
        let size = crate::types::checked_tensor_size(&name, ggml_type, ne)?;
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensor { name });
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            ggml_type,
            ne: ne.to_vec(),
            size,
        });
        Ok(())
    }

    fn put(&mut self, b: &[u8]) -> Result<(), GgufError> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn put_str(&mut self, s: &str) -> Result<(), GgufError> {
        self.put(&(s.len() as u64).to_le_bytes())?;
        self.put(s.as_bytes())
    }

    fn pad(&mut self) -> Result<(), GgufError> {
        let n = self.pos.next_multiple_of(self.alignment) - self.pos;
        const ZEROS: [u8; 64] = [0; 64];
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64) as usize;
            self.put(&ZEROS[..k])?;
            left -= k as u64;
        }
        Ok(())
    }

    fn put_value(&mut self, v: &OwnedValue) -> Result<(), GgufError> {
        self.put(&v.value_type().id().to_le_bytes())?;
        match v {
            OwnedValue::U8(x) => self.put(&[*x]),
            OwnedValue::I8(x) => self.put(&x.to_le_bytes()),
            OwnedValue::U16(x) => self.put(&x.to_le_bytes()),
            OwnedValue::I16(x) => self.put(&x.to_le_bytes()),
            OwnedValue::U32(x) => self.put(&x.to_le_bytes()),
            OwnedValue::I32(x) => self.put(&x.to_le_bytes()),
            OwnedValue::F32(x) => self.put(&x.to_le_bytes()),
            OwnedValue::Bool(x) => self.put(&[u8::from(*x)]),
            OwnedValue::Str(s) => self.put_str(s),
            OwnedValue::U64(x) => self.put(&x.to_le_bytes()),
            OwnedValue::I64(x) => self.put(&x.to_le_bytes()),
            OwnedValue::F64(x) => self.put(&x.to_le_bytes()),
            OwnedValue::Array(a) => {
                self.put(&a.elem_type().id().to_le_bytes())?;
                self.put(&(a.len() as u64).to_le_bytes())?;
                // Numeric arrays are encoded in chunks, so a large vocabulary's scores do not
                // turn into hundreds of thousands of tiny writes on an unbuffered sink.
                macro_rules! each {
                    ($v:expr) => {{
                        let mut buf = Vec::with_capacity(4096);
                        for chunk in $v.chunks(512) {
                            buf.clear();
                            for x in chunk {
                                buf.extend_from_slice(&x.to_le_bytes());
                            }
                            self.put(&buf)?;
                        }
                        Ok(())
                    }};
                }
                match a {
                    OwnedArray::U8(v) => self.put(v),
                    OwnedArray::I8(v) => each!(v),
                    OwnedArray::U16(v) => each!(v),
                    OwnedArray::I16(v) => each!(v),
                    OwnedArray::U32(v) => each!(v),
                    OwnedArray::I32(v) => each!(v),
                    OwnedArray::F32(v) => each!(v),
                    OwnedArray::U64(v) => each!(v),
                    OwnedArray::I64(v) => each!(v),
                    OwnedArray::F64(v) => each!(v),
                    OwnedArray::Bool(v) => {
                        let bytes: Vec<u8> = v.iter().map(|&x| u8::from(x)).collect();
                        self.put(&bytes)
                    }
                    OwnedArray::Str(v) => {
                        for s in v {
                            self.put_str(s)?;
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    fn write_header(&mut self) -> Result<(), GgufError> {
        self.put(&MAGIC)?;
        self.put(&self.version.to_le_bytes())?;
        self.put(&(self.tensors.len() as u64).to_le_bytes())?;
        self.put(&(self.kvs.len() as u64).to_le_bytes())?;
        let kvs = std::mem::take(&mut self.kvs);
        for (k, v) in &kvs {
            self.put_str(k)?;
            self.put_value(v)?;
        }
        let tensors = std::mem::take(&mut self.tensors);
        let mut offset = 0u64;
        let mut res = Ok(());
        for t in &tensors {
            res = (|| {
                self.put_str(&t.name)?;
                self.put(&(t.ne.len() as u32).to_le_bytes())?;
                for &d in &t.ne {
                    self.put(&d.to_le_bytes())?;
                }
                self.put(&t.ggml_type.id().to_le_bytes())?;
                self.put(&offset.to_le_bytes())
            })();
            if res.is_err() {
                break;
            }
            offset = offset.saturating_add(t.size.next_multiple_of(self.alignment));
        }
        self.tensors = tensors;
        res?;
        self.pad()?;
        self.next = Some(0);
        Ok(())
    }

    /// Writes the data of tensor `name`, which must be the next declared tensor, with exactly the
    /// byte length its type and shape imply; then pads to the alignment.
    pub fn write_tensor_data(&mut self, name: &str, data: &[u8]) -> Result<(), GgufError> {
        if self.next.is_none() {
            self.write_header()?;
        }
        let i = self.next.unwrap_or(0);
        let Some(t) = self.tensors.get(i) else {
            return Err(GgufError::TensorOrder {
                expected: None,
                found: name.to_owned(),
            });
        };
        if t.name != name {
            return Err(GgufError::TensorOrder {
                expected: Some(t.name.clone()),
                found: name.to_owned(),
            });
        }
        if t.size != data.len() as u64 {
            return Err(GgufError::TensorDataLength {
                name: name.to_owned(),
                expected: t.size,
                found: data.len() as u64,
            });
        }
        self.put(data)?;
        self.pad()?;
        self.next = Some(i + 1);
        Ok(())
    }

    /// Writes the data of tensor `name` (the next declared tensor) in pieces, so a large tensor
    /// never has to be held in memory: `fill` receives a sink and passes it consecutive chunks
    /// whose lengths must add up to the tensor's byte size; then the data is padded to the
    /// alignment. A sink call that would exceed the size fails with
    /// [`GgufError::TensorDataLength`], as does a total that falls short.
    ///
    /// If `fill` (or the sink) fails, the tensor is left half-written and the writer must be
    /// discarded.
    ///
    /// ```
    /// # fn main() -> Result<(), gguf::GgufError> {
    /// let mut w = gguf::GgufWriter::new(Vec::new());
    /// w.add_tensor("t", gguf::GgmlType::F32, &[4])?;
    /// w.write_tensor_data_with("t", |sink| -> Result<(), gguf::GgufError> {
    ///     sink(&1f32.to_le_bytes())?;
    ///     sink(&[0; 12])
    /// })?;
    /// let file = gguf::Gguf::from_bytes(w.finish()?)?;
    /// assert_eq!(file.dequantize(file.require_tensor("t")?)?, [1.0, 0.0, 0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_tensor_data_with<E: From<GgufError>>(
        &mut self,
        name: &str,
        fill: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), GgufError>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.next.is_none() {
            self.write_header()?;
        }
        let i = self.next.unwrap_or(0);
        let size = match self.tensors.get(i) {
            Some(t) if t.name == name => t.size,
            other => {
                return Err(GgufError::TensorOrder {
                    expected: other.map(|t| t.name.clone()),
                    found: name.to_owned(),
                }
                .into())
            }
        };
        let mut written = 0u64;
        {
            let mut sink = |chunk: &[u8]| -> Result<(), GgufError> {
                let total = written.saturating_add(chunk.len() as u64);
                if total > size {
                    return Err(GgufError::TensorDataLength {
                        name: name.to_owned(),
                        expected: size,
                        found: total,
                    });
                }
                self.put(chunk)?;
                written = total;
                Ok(())
            };
            fill(&mut sink)?;
        }
        if written != size {
            return Err(GgufError::TensorDataLength {
                name: name.to_owned(),
                expected: size,
                found: written,
            }
            .into());
        }
        self.pad()?;
        self.next = Some(i + 1);
        Ok(())
    }

    /// Writes the data of an F32 tensor (see [`GgufWriter::write_tensor_data`]).
    pub fn write_tensor_f32(&mut self, name: &str, data: &[f32]) -> Result<(), GgufError> {
        self.write_tensor_data(name, zerocopy::IntoBytes::as_bytes(data))
    }

    /// Writes the data of a Q8_0 tensor (see [`GgufWriter::write_tensor_data`]).
    pub fn write_tensor_q8_0(&mut self, name: &str, data: &[BlockQ8_0]) -> Result<(), GgufError> {
        self.write_tensor_data(name, zerocopy::IntoBytes::as_bytes(data))
    }

    /// Writes the header if no tensor data was written, checks that every declared tensor got
    /// its data, flushes, and returns the sink.
    pub fn finish(mut self) -> Result<W, GgufError> {
        if self.next.is_none() {
            self.write_header()?;
        }
        let i = self.next.unwrap_or(0);
        if let Some(t) = self.tensors.get(i) {
            return Err(GgufError::MissingTensorData {
                name: t.name.clone(),
            });
        }
        self.out.flush()?;
        Ok(self.out)
    }
}
