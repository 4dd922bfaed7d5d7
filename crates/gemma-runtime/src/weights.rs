//! Weight matrices used in place from the memory-mapped GGUF file, or packed once for the int8
//! kernel.
//!
//! A [`Matrix`] keeps the tensor's description; its bytes are viewed (zero-copy, checked by
//! zerocopy for size and alignment) each time a product needs them, so the model owns the map and
//! nothing borrows from it across calls. Where the kernels have a faster int8 kernel for a packed
//! layout ([`Kernels::supports_packed_q8_0`]), [`Matrix::pack`] makes that copy once and the
//! int8 products use it.

use std::sync::Arc;

use gguf::{GgmlType, Gguf, TensorInfo};
use half::{bf16, f16};
use q8_kernels::{
    ActivationPrecision, BlockQ8_0, Kernels, PackedQ8_0, QuantizedActivations, Threads, QK8_0,
};
use zerocopy::FromBytes;

use crate::RuntimeError;

/// The weight types a [`Matrix`] can hold.
const MATRIX_TYPES: &str = "q8_0, f32, f16, bf16";

/// A 2-D weight: `rows` output rows of `cols` input values (GGUF `ne = [cols, rows]`).
#[derive(Clone, Debug)]
pub(crate) struct Matrix {
    info: TensorInfo,
    /// Output size (`ne[1]`).
    pub rows: usize,
    /// Input size (`ne[0]`).
    pub cols: usize,
    /// The Q8_0 weights packed for the int8 kernel ([`Matrix::pack`]).
    packed: Option<Arc<PackedQ8_0>>,
}

/// Converts a dimension from the file to `usize` (it was already bounded by the file's size).
fn to_usize(name: &str, v: u64) -> Result<usize, RuntimeError> {
    usize::try_from(v).map_err(|_| RuntimeError::InvalidHyperparameter {
        key: name.to_owned(),
        value: v.to_string(),
        reason: "tensor dimension does not fit in usize".to_owned(),
    })
}

/// Checks that `t` has exactly the shape `expected` (`ne`, fastest first).
pub(crate) fn check_shape(t: &TensorInfo, expected: &[usize]) -> Result<(), RuntimeError> {
    let same =
        t.ne.len() == expected.len() && t.ne.iter().zip(expected).all(|(&a, &b)| a == b as u64);
    if same {
        Ok(())
    } else {
        Err(RuntimeError::TensorShape {
            name: t.name.clone(),
            expected: expected.iter().map(|&d| d as u64).collect(),
            found: t.ne.clone(),
        })
    }
}

impl Matrix {
    /// Looks up `name`, checks it is `rows × cols` of a supported type and that its bytes can be
    /// viewed in place.
    pub(crate) fn load<B: AsRef<[u8]>>(
        file: &Gguf<B>,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, RuntimeError> {
        let info = file.require_tensor(name)?.clone();
        check_shape(&info, &[cols, rows])?;
        let m = Matrix {
            rows: to_usize(name, info.ne[1])?,
            cols: to_usize(name, info.ne[0])?,
            info,
            packed: None,
        };
        m.view(file)?;
        Ok(m)
    }

    /// Like [`Matrix::load`] but takes the shape from the file (for the token embedding, whose row
    /// count is the vocabulary size): `ne = [cols, any]`.
    pub(crate) fn load_rows_any<B: AsRef<[u8]>>(
        file: &Gguf<B>,
        name: &str,
        cols: usize,
    ) -> Result<Matrix, RuntimeError> {
        let info = file.require_tensor(name)?;
        let rows = match info.ne.as_slice() {
            [_, rows] => to_usize(name, *rows)?,
            _ => usize::MAX, // any value: check_shape below reports the real shape
        };
        if rows == 0 {
            return Err(RuntimeError::TensorShape {
                name: name.to_owned(),
                expected: vec![cols as u64, 1],
                found: info.ne.clone(),
            });
        }
        Matrix::load(file, name, rows, cols)
    }

    /// Packs Q8_0 weights for `kern`'s int8 kernel if it has one; other weights stay as they
    /// are. Returns whether the matrix is packed (then the file's pages of the tensor are no
    /// longer read by int8 products, and the caller may release them).
    pub(crate) fn pack<B: AsRef<[u8]>>(
        &mut self,
        kern: &Kernels,
        file: &Gguf<B>,
    ) -> Result<bool, RuntimeError> {
        if self.packed.is_none() && kern.supports_packed_q8_0() {
            if let WeightView::Q8_0(w) = self.view(file)? {
                self.packed = Some(Arc::new(kern.pack_q8_0(w, self.rows)?));
            }
        }
        Ok(self.packed.is_some())
    }

    /// Uses `packed` (the packed form of this matrix, for example read from a cache file) for
    /// the int8 products.
    pub(crate) fn set_packed(&mut self, packed: PackedQ8_0) {
        self.packed = Some(Arc::new(packed));
    }

    /// The packed form, if [`Matrix::pack`] or [`Matrix::set_packed`] made one.
    pub(crate) fn packed(&self) -> Option<&PackedQ8_0> {
        self.packed.as_deref()
    }

    /// The tensor's description in the file.
    pub(crate) fn info(&self) -> &TensorInfo {
        &self.info
    }

    /// The ggml type of the weights.
    pub(crate) fn ggml_type(&self) -> GgmlType {
        self.info.ggml_type
    }

    /// Zero-copy view of the data.
    pub(crate) fn view<'f, B: AsRef<[u8]>>(
        &self,
        file: &'f Gguf<B>,
    ) -> Result<WeightView<'f>, RuntimeError> {
        let bytes = file.tensor_bytes(&self.info);
        let bad = || {
            RuntimeError::Gguf(gguf::GgufError::Misaligned {
                name: self.info.name.clone(),
                align: 2,
            })
        };
        let view = match self.info.ggml_type {
            GgmlType::Q8_0 => {
                if self.cols % QK8_0 != 0 {
                    return Err(RuntimeError::TensorShape {
                        name: self.info.name.clone(),
                        expected: vec![self.cols.next_multiple_of(QK8_0) as u64, self.rows as u64],
                        found: self.info.ne.clone(),
                    });
                }
                WeightView::Q8_0(<[BlockQ8_0]>::ref_from_bytes(bytes).map_err(|_| bad())?)
            }
            GgmlType::F32 => WeightView::F32(file.tensor_f32(&self.info)?),
            GgmlType::F16 => WeightView::F16(<[f16]>::ref_from_bytes(bytes).map_err(|_| bad())?),
            GgmlType::BF16 => WeightView::Bf16(<[bf16]>::ref_from_bytes(bytes).map_err(|_| bad())?),
            other => {
                return Err(RuntimeError::UnsupportedTensorType {
                    name: self.info.name.clone(),
                    ggml_type: other.name().to_owned(),
                    supported: MATRIX_TYPES,
                })
            }
        };
        let expected_len = match view {
            WeightView::Q8_0(w) => (w.len(), self.rows * (self.cols / QK8_0)),
            WeightView::F32(w) => (w.len(), self.rows * self.cols),
            WeightView::F16(w) => (w.len(), self.rows * self.cols),
            WeightView::Bf16(w) => (w.len(), self.rows * self.cols),
        };
        if expected_len.0 != expected_len.1 {
            return Err(bad());
        }
        Ok(view)
    }

    /// Dequantises row `row` into `out` (`cols` values). `row` must be below `rows`.
    pub(crate) fn dequantize_row<B: AsRef<[u8]>>(
        &self,
        file: &Gguf<B>,
        row: usize,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        debug_assert!(row < self.rows && out.len() == self.cols);
        let c = self.cols;
        match self.view(file)? {
            WeightView::Q8_0(w) => {
                let bpr = c / QK8_0;
                q8_kernels::dequantize_q8_0(&w[row * bpr..(row + 1) * bpr], out)?;
            }
            WeightView::F32(w) => out.copy_from_slice(&w[row * c..(row + 1) * c]),
            WeightView::F16(w) => {
                for (o, v) in out.iter_mut().zip(&w[row * c..(row + 1) * c]) {
                    *o = v.to_f32();
                }
            }
            WeightView::Bf16(w) => {
                for (o, v) in out.iter_mut().zip(&w[row * c..(row + 1) * c]) {
                    *o = v.to_f32();
                }
            }
        }
        Ok(())
    }
}

/// The data of a [`Matrix`], borrowed from the file.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WeightView<'f> {
    /// Q8_0 blocks, `rows × cols/32`.
    Q8_0(&'f [BlockQ8_0]),
    /// f32 values, `rows × cols`.
    F32(&'f [f32]),
    /// f16 values, `rows × cols`.
    F16(&'f [f16]),
    /// bf16 values, `rows × cols`.
    Bf16(&'f [bf16]),
}

/// The input of one or more matrix products: the f32 activations and, for Q8_0 weights, the same
/// activations quantised once (shared by every product that reads this input).
pub(crate) struct Input<'a> {
    /// `tokens × cols` f32 values.
    pub x: &'a [f32],
    /// `x` quantised for the Q8_0 products.
    pub q: &'a QuantizedActivations,
}

impl Input<'_> {
    /// Whether the quantised activations are int8 (`Int8` or `Int8x2`), which packed weights
    /// need.
    fn is_int8(&self) -> bool {
        matches!(
            self.q.precision(),
            Some(ActivationPrecision::Int8 | ActivationPrecision::Int8x2)
        )
    }
}

/// Quantises `x` once for the Q8_0 products among `ms` (which all read `x`) at `precision`, on
/// the current rayon pool if `parallel`; nothing to do if they all have float weights.
pub(crate) fn prepare(
    kern: &Kernels,
    ms: &[&Matrix],
    x: &[f32],
    precision: ActivationPrecision,
    out: &mut QuantizedActivations,
    parallel: bool,
) -> Result<(), RuntimeError> {
    if let Some(m) = ms.iter().find(|m| m.ggml_type() == GgmlType::Q8_0) {
        kern.quantize_activations(x, m.cols, precision, out, threads(parallel))?;
    }
    Ok(())
}

/// The kernels' threading for a `parallel` flag.
pub(crate) fn threads(parallel: bool) -> Threads {
    if parallel {
        Threads::Current
    } else {
        Threads::Single
    }
}

/// `y = x · Wᵀ` (`y` is `tokens × rows`), on the current rayon pool if `parallel`.
pub(crate) fn matmul<B: AsRef<[u8]>>(
    kern: &Kernels,
    file: &Gguf<B>,
    m: &Matrix,
    input: &Input<'_>,
    y: &mut [f32],
    parallel: bool,
) -> Result<(), RuntimeError> {
    let (n, k, x) = (m.rows, m.cols, input.x);
    if let (Some(p), true) = (&m.packed, input.is_int8()) {
        kern.matmul_packed_q8_0(p, input.q, y, threads(parallel))?;
        return Ok(());
    }
    let threads = threads(parallel);
    match m.view(file)? {
        WeightView::Q8_0(w) => kern.matmul_q8_0(w, n, input.q, y, threads)?,
        WeightView::F32(w) => kern.matmul_f32(w, n, k, x, y, threads)?,
        WeightView::F16(w) => kern.matmul_f16(w, n, k, x, y, threads)?,
        WeightView::Bf16(w) => kern.matmul_bf16(w, n, k, x, y, threads)?,
    }
    Ok(())
}

/// `ys[i] = x · ms[i]ᵀ` for several matrices that read the same input: one parallel region for
/// all of them when they are packed and the activations are int8 (the threads meet once, not
/// once per product), else one [`matmul`] each.
pub(crate) fn matmul_many<B: AsRef<[u8]>>(
    kern: &Kernels,
    file: &Gguf<B>,
    ms: &[&Matrix],
    input: &Input<'_>,
    ys: Vec<&mut [f32]>,
    parallel: bool,
) -> Result<(), RuntimeError> {
    let packed: Option<Vec<&PackedQ8_0>> = ms.iter().map(|m| m.packed()).collect();
    match packed {
        Some(ws) if input.is_int8() && parallel => {
            kern.matmul_packed_q8_0_many(&ws, input.q, ys)?
        }
        _ => {
            for (m, y) in ms.iter().zip(ys) {
                matmul(kern, file, m, input, y, parallel)?;
            }
        }
    }
    Ok(())
}

/// Reads a 1-D F32/F16/BF16 vector of `len` values (the norm weights).
pub(crate) fn load_vector<B: AsRef<[u8]>>(
    file: &Gguf<B>,
    name: &str,
    len: usize,
) -> Result<Vec<f32>, RuntimeError> {
    let info = file.require_tensor(name)?;
    check_shape(info, &[len])?;
    match info.ggml_type {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Ok(file.dequantize(info)?),
        other => Err(RuntimeError::UnsupportedTensorType {
            name: name.to_owned(),
            ggml_type: other.name().to_owned(),
            supported: "f32, f16, bf16",
        }),
    }
}
