//! The forward pass of one sequence, on reusable scratch buffers.

use q8_kernels::{ActivationPrecision, AttentionPrecision, AttentionSpec, QuantizedActivations};

use super::{GemmaModel, Layer, Pooling, Ropes, EMBD_ROWS_PER_RELEASE};
use crate::model::Precision;
use crate::weights::{matmul, matmul_many, prepare, Input, Matrix};
use crate::RuntimeError;

/// The matrix products of the model, grouped by the input they read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `attn_q`, `attn_k`, `attn_v` (input: normed residual).
    Qkv,
    /// `attn_output` (input: attention output).
    AttnOut,
    /// `ffn_gate`, `ffn_up` (input: normed residual).
    GateUp,
    /// `ffn_down` (input: `gelu(gate) ⊙ up`).
    Down,
    /// `dense_2`, `dense_3` (input: one pooled vector).
    Dense,
}

/// Sequences of at most this many tokens use two-part int8 activations for every product in
/// [`Precision::Mixed`]. Short texts are where one token's rounding moves the mean-pooled vector
/// most: with int8 activations in the attention products, 1-ulp differences between backends in
/// the f32 steps (a vectorised `exp` against libm's) flip roundings that a few texts amplify
/// (a cancelling `q`/`k` head renormalised by its RMSNorm), and the cosine to the exact model
/// swings between 0.98 and 0.9999. Two-part activations keep ~16 bits: over 600 short lines every
/// vector is within 0.999999 of the f32-activation one. The choice depends on the sequence alone,
/// never on the batch or the backend, so results stay identical alone and batched.
pub(crate) const MIXED_INT8X2_MAX_TOKENS: usize = 64;

/// The activation precision of the Q8_0 products of `role` under `precision` for a sequence of
/// `tokens` tokens, with the layer weights `packed` for the int8 kernel or not.
pub(crate) fn activation_precision(
    precision: Precision,
    role: Role,
    tokens: usize,
    packed: bool,
) -> ActivationPrecision {
    match (precision, role) {
        (Precision::F32, _) => ActivationPrecision::F32,
        // One vector: the products read 4.7 M weights for 2 tokens' worth of int8 work, so
        // two-part activations cost no more than one part, and are much faster than f32
        // activations (6 % of a 4-token forward pass).
        (_, Role::Dense) if packed => ActivationPrecision::Int8x2,
        (_, Role::Dense) => ActivationPrecision::F32,
        (Precision::Int8, _) => ActivationPrecision::Int8,
        (Precision::Mixed, _) if tokens <= MIXED_INT8X2_MAX_TOKENS => ActivationPrecision::Int8x2,
        // Longer texts: the attention inputs (renormalised per head after the product) and
        // `gelu(gate) ⊙ up` (not RMS-normalised, the largest outliers) keep two parts; see
        // `Precision` for the measurements.
        (Precision::Mixed, Role::Qkv | Role::Down) => ActivationPrecision::Int8x2,
        (Precision::Mixed, _) => ActivationPrecision::Int8,
    }
}

/// Tokens per feed-forward step. The `n_ff`-wide intermediates (`gate`, `up`, `h`) hold this many
/// tokens instead of the whole sequence: for 2,048 tokens that is 3.5 MB instead of 28 MB, and
/// each step's intermediates stay in cache. Every token's outputs are computed the same way in
/// any step (the products work token by token), so the results do not depend on this size.
pub(crate) const FFN_CHUNK: usize = 256;

/// Working memory of one forward pass; grown to the longest sequence seen, never shrunk.
///
/// Buffers that are never needed at the same time share one allocation, handed over with
/// [`std::mem::swap`]: `xn` and `att` (the normed residual is dead once `q`, `k`, `v` exist), `q`
/// and `o` (the queries are dead once attention has run). Between blocks the allocations are in
/// `xn` and `q`.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Residual stream, `n × n_embd`.
    x: Vec<f32>,
    /// Normed residual, `n × n_embd`.
    xn: Vec<f32>,
    /// Queries, `n × n_head·head_dim`.
    q: Vec<f32>,
    /// Keys, `n × n_head_kv·head_dim`.
    k: Vec<f32>,
    /// Values, `n × n_head_kv·head_dim`.
    v: Vec<f32>,
    /// Attention output, `n × n_head·head_dim` (the allocation of `xn`).
    att: Vec<f32>,
    /// Output of `attn_output` / `ffn_down`, `n × n_embd` (the allocation of `q`).
    o: Vec<f32>,
    /// `ffn_gate` output, `FFN_CHUNK × n_ff` at most.
    gate: Vec<f32>,
    /// `ffn_up` output, `FFN_CHUNK × n_ff` at most.
    up: Vec<f32>,
    /// `gelu(gate) ⊙ up`, `FFN_CHUNK × n_ff` at most.
    h: Vec<f32>,
    /// Pooled vector and Dense outputs.
    pooled: Vec<f32>,
    mid: Vec<f32>,
    out: Vec<f32>,
    /// Quantised activations of the current product input.
    acts: QuantizedActivations,
}

/// `v` with exactly `len` values. The contents are stale (every user overwrites the whole
/// buffer), so a reused buffer of the right length costs nothing.
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    v
}

impl GemmaModel {
    /// Runs the model on `ids` and returns the output vector (pooled, Dense-projected, not
    /// normalised).
    pub(super) fn forward(
        &self,
        ids: &[u32],
        s: &mut Scratch,
        parallel: bool,
    ) -> Result<Vec<f32>, RuntimeError> {
        let cfg = &self.cfg;
        let kern = self.kern;
        let n = ids.len();
        if n == 0 {
            return Err(RuntimeError::EmptySequence);
        }
        if n > cfg.context_length {
            return Err(RuntimeError::SequenceTooLong {
                len: n,
                max: cfg.context_length,
            });
        }
        let d = cfg.n_embd;
        let vocab = self.token_embd.rows;

        // 1. Scaled embeddings of the needed rows only.
        let x = sized(&mut s.x, n * d);
        let scale = (d as f32).sqrt();
        for (position, (&id, row)) in ids.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            let r = id as usize;
            if r >= vocab {
                return Err(RuntimeError::TokenOutOfRange {
                    id,
                    position,
                    vocab_size: vocab,
                });
            }
            self.token_embd.dequantize_row(&self.file, r, row)?;
            kern.scale(row, scale);
            if (position + 1) % EMBD_ROWS_PER_RELEASE == 0 {
                self.release_token_embd();
            }
        }
        self.release_token_embd();
        let ropes = self.ropes(n)?;
        sized(&mut s.k, n * cfg.kv_dim());
        sized(&mut s.v, n * cfg.kv_dim());
        let ffn_tokens = n.min(self.ffn_chunk);
        sized(&mut s.gate, ffn_tokens * cfg.n_ff);
        sized(&mut s.up, ffn_tokens * cfg.n_ff);
        sized(&mut s.h, ffn_tokens * cfg.n_ff);

        // 2. The blocks.
        for layer in &self.layers {
            self.block(layer, n, &ropes, s, parallel)?;
        }

        // 3. Final norm and pooling.
        kern.rms_norm_inplace(&mut s.x, &self.output_norm, cfg.eps)?;
        let pooled = sized(&mut s.pooled, d);
        match cfg.pooling {
            Pooling::Mean => kern.mean_pool(&s.x, pooled)?,
            Pooling::Cls => pooled.copy_from_slice(&s.x[..d]),
            Pooling::Last => pooled.copy_from_slice(&s.x[(n - 1) * d..]),
        }

        // 4. Dense projections.
        let Some((d2, d3)) = &self.dense else {
            return Ok(s.pooled.clone());
        };
        let packed = d2.packed().is_some() && d3.packed().is_some();
        let p = activation_precision(self.precision, Role::Dense, 1, packed);
        sized(&mut s.mid, d2.rows);
        sized(&mut s.out, d3.rows);
        self.product(d2, &s.pooled, p, &mut s.acts, &mut s.mid, parallel)?;
        self.product(d3, &s.mid, p, &mut s.acts, &mut s.out, parallel)?;
        Ok(s.out.clone())
    }

    /// One product with its own input quantisation.
    fn product(
        &self,
        m: &Matrix,
        x: &[f32],
        p: ActivationPrecision,
        acts: &mut QuantizedActivations,
        y: &mut [f32],
        parallel: bool,
    ) -> Result<(), RuntimeError> {
        prepare(self.kern, &[m], x, p, acts, parallel)?;
        matmul(self.kern, &self.file, m, &Input { x, q: acts }, y, parallel)
    }

    /// One transformer block on `s.x` (`n` tokens).
    fn block(
        &self,
        l: &Layer,
        n: usize,
        ropes: &Ropes,
        s: &mut Scratch,
        parallel: bool,
    ) -> Result<(), RuntimeError> {
        let cfg = &self.cfg;
        let kern = self.kern;
        let file = &self.file;
        let prec = |role| activation_precision(self.precision, role, n, self.packed);

        // Attention.
        sized(&mut s.xn, n * cfg.n_embd);
        sized(&mut s.q, n * cfg.q_dim());
        kern.rms_norm(&s.x, &l.attn_norm, cfg.eps, &mut s.xn)?;
        prepare(
            kern,
            &[&l.wq, &l.wk, &l.wv],
            &s.xn,
            prec(Role::Qkv),
            &mut s.acts,
            parallel,
        )?;
        {
            let input = Input {
                x: &s.xn,
                q: &s.acts,
            };
            let ys = vec![&mut s.q[..], &mut s.k[..], &mut s.v[..]];
            matmul_many(kern, file, &[&l.wq, &l.wk, &l.wv], &input, ys, parallel)?;
        }
        kern.rms_norm_inplace(&mut s.q, &l.q_norm, cfg.eps)?;
        kern.rms_norm_inplace(&mut s.k, &l.k_norm, cfg.eps)?;
        let (rope, window) = if l.local {
            (&ropes.local, Some(cfg.half_window()))
        } else {
            (&ropes.global, None)
        };
        kern.rope_neox_seq(&mut s.q, cfg.n_head, rope)?;
        kern.rope_neox_seq(&mut s.k, cfg.n_head_kv, rope)?;
        // The normed residual is dead: its allocation takes the attention output.
        std::mem::swap(&mut s.xn, &mut s.att);
        sized(&mut s.att, n * cfg.q_dim());
        // bf16 attention operands (twice the f32 rate where the CPU has AVX512_BF16) only in
        // llama.cpp's scheme: they move the cosine to sentence-transformers by ~3e-5 on average
        // (74 prompt-less golden rows: mean 0.999711 -> 0.999678 with `Mixed`), which `Mixed`
        // keeps.
        let spec = AttentionSpec {
            seq_len: n,
            n_heads: cfg.n_head,
            n_kv_heads: cfg.n_head_kv,
            head_dim: cfg.head_dim,
            scale: 1.0 / (cfg.head_dim as f32).sqrt(),
            window,
            precision: if self.precision == Precision::Int8 {
                AttentionPrecision::Bf16
            } else {
                AttentionPrecision::F32
            },
        };
        let threads = crate::weights::threads(parallel);
        kern.attention(&s.q, &s.k, &s.v, &spec, &mut s.att, threads)?;
        // The queries are dead: their allocation takes the output projection.
        std::mem::swap(&mut s.q, &mut s.o);
        sized(&mut s.o, n * cfg.n_embd);
        self.product(
            &l.wo,
            &s.att,
            prec(Role::AttnOut),
            &mut s.acts,
            &mut s.o,
            parallel,
        )?;
        kern.rms_norm_inplace(&mut s.o, &l.post_attn_norm, cfg.eps)?;
        kern.add_assign(&mut s.x, &s.o)?;

        // Feed-forward, `ffn_chunk` tokens at a time.
        std::mem::swap(&mut s.att, &mut s.xn);
        sized(&mut s.xn, n * cfg.n_embd);
        kern.rms_norm(&s.x, &l.ffn_norm, cfg.eps, &mut s.xn)?;
        let d = cfg.n_embd;
        for start in (0..n).step_by(self.ffn_chunk) {
            let tokens = self.ffn_chunk.min(n - start);
            let rows = start * d..(start + tokens) * d;
            let xn = &s.xn[rows.clone()];
            let gate = &mut s.gate[..tokens * cfg.n_ff];
            let up = &mut s.up[..tokens * cfg.n_ff];
            let h = &mut s.h[..tokens * cfg.n_ff];
            prepare(
                kern,
                &[&l.gate, &l.up],
                xn,
                prec(Role::GateUp),
                &mut s.acts,
                parallel,
            )?;
            {
                let input = Input { x: xn, q: &s.acts };
                let ys = vec![&mut gate[..], &mut up[..]];
                matmul_many(kern, file, &[&l.gate, &l.up], &input, ys, parallel)?;
            }
            kern.geglu(gate, up, h)?;
            let o = &mut s.o[rows.clone()];
            self.product(&l.down, h, prec(Role::Down), &mut s.acts, o, parallel)?;
            kern.rms_norm_inplace(o, &l.post_ffw_norm, cfg.eps)?;
            kern.add_assign(&mut s.x[rows], o)?;
        }
        // Back to the places the next block expects.
        std::mem::swap(&mut s.o, &mut s.q);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RuntimeOptions;

    /// The feed-forward step size changes nothing, bit for bit (tokens are independent in the
    /// products, the norms and GeGLU). Uses the real Q8_0 model (`cargo xtask fetch-model`).
    #[test]
    fn feed_forward_step_size_does_not_change_the_embedding() {
        let path = crate::testing::require_model("q8_0").unwrap_or_else(|e| panic!("{e}"));
        // Arbitrary in-vocabulary ids; one step boundary at FFN_CHUNK and a short last step.
        let ids: Vec<u32> = (0..FFN_CHUNK as u32 + 44)
            .map(|i| 2 + i.wrapping_mul(7919) % 200_000)
            .collect();
        for precision in [Precision::Mixed, Precision::F32] {
            let file = gguf::Gguf::open(&path).expect("model opens");
            let mut model = GemmaModel::load(
                &path,
                file,
                &RuntimeOptions {
                    precision,
                    ..Default::default()
                },
            )
            .expect("loads");
            let bits = |model: &GemmaModel, parallel: bool| -> Vec<u32> {
                let mut s = Scratch::default();
                let v = model.forward(&ids, &mut s, parallel).expect("embeds");
                v.iter().map(|x| x.to_bits()).collect()
            };
            assert_eq!(model.ffn_chunk, FFN_CHUNK);
            let stepped = bits(&model, true);
            for chunk in [ids.len(), 64, 7] {
                model.ffn_chunk = chunk;
                for parallel in [true, false] {
                    assert!(
                        bits(&model, parallel) == stepped,
                        "{precision:?}: {chunk}-token steps (parallel {parallel}) differ from \
                         {FFN_CHUNK}-token steps"
                    );
                }
            }
        }
    }
}
