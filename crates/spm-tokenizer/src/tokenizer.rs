//! The tokenizer: vocabulary tables, normalization, special-token splitting, BPE-by-score merging
//! with byte fallback, truncation, batch encoding and decoding.

use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::path::Path;

use rayon::prelude::*;

use crate::cache::{WordCache, MAX_WORD};
use crate::map::{hash_long, load_le, LongTable, PieceMap, Pieces, ShortTable, NONE};
use crate::proto::{self, ModelType, PieceType};
use crate::special::SpecialMatcher;
use crate::TokenizerError;

/// `▁` (U+2581), SentencePiece's visible space, in UTF-8.
const SPACE_MARK: &[u8; 3] = b"\xE2\x96\x81";

/// Words up to this many characters are merged by scanning an array of pair scores (fast for the
/// short words that make up most text); longer ones use a priority queue, as llama.cpp does.
const SMALL_WORD: usize = 48;

/// Tokens merged past a length limit when a long word is cut (see `Tokenizer::encode_text`):
/// they absorb any difference that the cut makes to the last tokens of the merged prefix.
const LIMIT_MARGIN: usize = 16;

/// Special-token ids and flags of a vocabulary (GGUF's `tokenizer.ggml.*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VocabConfig {
    /// Beginning-of-sequence token (`tokenizer.ggml.bos_token_id`).
    pub bos: Option<u32>,
    /// End-of-sequence token (`tokenizer.ggml.eos_token_id`).
    pub eos: Option<u32>,
    /// Unknown token (`tokenizer.ggml.unknown_token_id`); used for characters with no piece when
    /// byte pieces are missing.
    pub unk: Option<u32>,
    /// Padding token (`tokenizer.ggml.padding_token_id`).
    pub pad: Option<u32>,
    /// Put `bos` in front of every sequence (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// Put `eos` at the end of every sequence (`tokenizer.ggml.add_eos_token`).
    pub add_eos: bool,
    /// Put a `▁` in front of the text (`tokenizer.ggml.add_space_prefix`; false for Gemma).
    pub add_space_prefix: bool,
}

/// What to do when a text encodes to more than `max_length` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// Keep the first tokens; `bos`/`eos` (when added) stay at the ends.
    #[default]
    Truncate,
    /// Fail with [`TokenizerError::TooLong`].
    Error,
}

/// Options for [`Tokenizer::encode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add `bos`/`eos` as the vocabulary's flags say (default true).
    pub add_special_tokens: bool,
    /// Match CONTROL and UNKNOWN piece text in the input (e.g. `<start_of_turn>`) as that token
    /// (default true). USER_DEFINED pieces are always matched.
    pub parse_special: bool,
    /// Maximum number of tokens, special tokens included (default none). With
    /// [`Truncation::Truncate`], tokenizing stops soon after the limit: the rest of a long text
    /// is not merged, and a single word far longer than the limit is merged from a prefix with
    /// some tokens to spare, so a megabyte without spaces costs about what a text just past the
    /// limit costs.
    pub max_length: Option<usize>,
    /// What to do above `max_length`.
    pub truncation: Truncation,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            parse_special: true,
            max_length: None,
            truncation: Truncation::Truncate,
        }
    }
}

/// Options for [`Tokenizer::decode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Leave out CONTROL and UNKNOWN tokens (`<bos>`, `<eos>`, `<start_of_turn>`...); default true.
    pub skip_special_tokens: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            skip_special_tokens: true,
        }
    }
}

/// Text normalization applied before segmentation (from the model's `NormalizerSpec`).
#[derive(Debug, Clone, Copy)]
struct Normalization {
    escape_whitespaces: bool,
    remove_extra_whitespaces: bool,
}

/// A SentencePiece tokenizer (BPE by piece score with byte fallback), built once per vocabulary.
///
/// Cheap to share: `Tokenizer` is `Send + Sync` and every method takes `&self`.
pub struct Tokenizer {
    /// All piece texts, back to back.
    arena: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` is piece `i` in `arena`.
    offsets: Vec<u32>,
    scores: Vec<f32>,
    types: Vec<PieceType>,
    map: PieceMap,
    special: SpecialMatcher,
    /// Id of `<0xXX>` per byte, `NONE` if missing.
    byte_ids: [u32; 256],
    /// Characters `c` such that some mergeable piece holds `c` followed by `▁`: a word boundary
    /// before `▁` is only cut when the previous character is not one of these.
    no_split_before_space: Vec<char>,
    /// Last UTF-8 byte of each character of `no_split_before_space` (a cheap first filter).
    no_split_last_byte: [bool; 256],
    config: VocabConfig,
    norm: Normalization,
    /// Unique id of this tokenizer, owner tag of the per-thread word caches.
    instance: u64,
    /// `(score, id)` of the mergeable piece made of two symbols of [`ALPHA`] characters (ASCII and
    /// `▁`), `id` `NONE` if none: the first merge round of Latin-script words without hashing.
    alpha_pairs: Vec<(f32, u32)>,
    /// Id of the mergeable piece made of one ASCII character, `NONE` if none.
    ascii_ids: [u32; 128],
}

/// Size of the small alphabet with a direct pair table: the 128 ASCII characters and `▁`.
const ALPHA: usize = 129;

/// A piece made of exactly two small-alphabet characters, as their indices.
#[inline]
fn split_alpha_pair(text: &[u8]) -> Option<(usize, usize)> {
    let first = if text.first()? < &128 { 1 } else { 3 };
    let (a, b) = text.split_at_checked(first)?;
    Some((alpha(a)?, alpha(b)?))
}

/// Index of a one-character symbol in the small alphabet.
#[inline(always)]
fn alpha(sym: &[u8]) -> Option<usize> {
    match sym {
        [b] if *b < 128 => Some(usize::from(*b)),
        [0xE2, 0x96, 0x81] => Some(128),
        _ => None,
    }
}

static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Default)]
struct Scratch {
    norm: Vec<u8>,
    heap: BinaryHeap<Bigram>,
    links: Vec<Link>,
    cache: WordCache,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Clone, Copy)]
struct Link {
    start: u32,
    end: u32,
    prev: u32,
    next: u32,
    id: u32,
}

/// A queued pair for the priority-queue merge: `(key, right, size, id)`, ordered by `key` =
/// score (as an order-preserving integer) above, inverted left index below, so the heap's maximum
/// is the highest score and, on equal scores, the leftmost pair (llama.cpp's and SentencePiece's
/// order). Integer keys make each heap comparison one instruction.
type Bigram = (u64, u32, u32, u32);

/// Maps a score to a `u32` with the same order (`-0.0` and `0.0` equal, as in a float compare).
#[inline(always)]
fn score_key(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// What [`Tokenizer::build`] collects from the pieces besides the hash tables, over a range of ids.
struct Scan {
    /// Id of `<0xXX>` per byte, `NONE` if missing.
    byte_ids: [u32; 256],
    /// Id of the mergeable piece of one ASCII character, `NONE` if none.
    ascii_ids: [u32; 128],
    /// `(index in the pair table, score, id)` of each two-character small-alphabet piece, in id
    /// order (later ones win).
    alpha_pairs: Vec<(usize, f32, u32)>,
    /// `(text, id, always)` of the special pieces, in id order.
    specials: Vec<(Vec<u8>, u32, bool)>,
    /// Characters that precede a `▁` inside a mergeable piece, sorted, without duplicates.
    no_split: Vec<char>,
}

impl Scan {
    /// Scans pieces `ids`.
    fn collect<M: Fn(usize) -> bool>(
        pieces: &Pieces<'_, M>,
        types: &[PieceType],
        norm: Normalization,
        ids: std::ops::Range<usize>,
    ) -> Scan {
        let mut scan = Scan {
            byte_ids: [NONE; 256],
            ascii_ids: [NONE; 128],
            alpha_pairs: Vec::new(),
            specials: Vec::new(),
            no_split: Vec::new(),
        };
        let (arena, offsets) = (pieces.arena, pieces.offsets);
        for i in ids {
            let (s, e) = (offsets[i], offsets[i + 1]);
            let text = &arena[s as usize..e as usize];
            match types[i] {
                PieceType::Byte => {
                    if let Some(b) = parse_byte_piece(text) {
                        scan.byte_ids[usize::from(b)] = i as u32;
                    }
                }
                kind @ (PieceType::Control | PieceType::UserDefined | PieceType::Unknown) => {
                    let mut t = Vec::with_capacity(text.len());
                    for &b in text {
                        if b == b' ' && norm.escape_whitespaces {
                            t.extend_from_slice(SPACE_MARK);
                        } else {
                            t.push(b);
                        }
                    }
                    scan.specials
                        .push((t, i as u32, kind == PieceType::UserDefined));
                }
                PieceType::Normal => {
                    // Pieces of one or two small-alphabet characters go to the direct tables
                    // (later duplicates win, as in the hash table).
                    match text {
                        [c] if *c < 128 => scan.ascii_ids[usize::from(*c)] = i as u32,
                        _ if text.len() <= 6 => {
                            if let Some((a, b)) = split_alpha_pair(text) {
                                scan.alpha_pairs
                                    .push((a * ALPHA + b, pieces.scores[i], i as u32));
                            }
                        }
                        _ => {}
                    }
                    // Record characters that precede a `▁` inside the piece.
                    if has_inner_space_mark(text) {
                        record_space_predecessors(text, &mut scan.no_split);
                    }
                }
                PieceType::Unused => {}
            }
        }
        scan.no_split.sort_unstable();
        scan.no_split.dedup();
        scan
    }

    /// The scan of this range followed by `later` (whose entries win where both have one).
    fn then(mut self, later: Scan) -> Scan {
        for (mine, theirs) in self.byte_ids.iter_mut().zip(later.byte_ids) {
            if theirs != NONE {
                *mine = theirs;
            }
        }
        for (mine, theirs) in self.ascii_ids.iter_mut().zip(later.ascii_ids) {
            if theirs != NONE {
                *mine = theirs;
            }
        }
        self.alpha_pairs.extend(later.alpha_pairs);
        self.specials.extend(later.specials);
        self.no_split.extend(later.no_split);
        self.no_split.sort_unstable();
        self.no_split.dedup();
        self
    }
}

impl Tokenizer {
    /// Builds a tokenizer from plain vocabulary arrays, e.g. GGUF's `tokenizer.ggml.tokens`,
    /// `tokenizer.ggml.scores` and `tokenizer.ggml.token_type`.
    ///
    /// Token types use SentencePiece's numbering (1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte); 0 (llama.cpp's "undefined") is read as normal. Only normal pieces take part
    /// in merges; control, user-defined and unknown pieces are matched as whole tokens in the text;
    /// byte pieces `<0xXX>` are the fallback for characters no piece covers. Spaces inside
    /// user-defined pieces (as llama.cpp's converter writes them) match spaces in the text.
    ///
    /// # Errors
    /// [`TokenizerError::LengthMismatch`], [`TokenizerError::BadVocabSize`],
    /// [`TokenizerError::InvalidTokenType`], [`TokenizerError::SpecialIdOutOfRange`].
    pub fn from_parts<P, S, F, T>(
        pieces: P,
        scores: F,
        types: T,
        config: VocabConfig,
    ) -> Result<Tokenizer, TokenizerError>
    where
        P: IntoIterator<Item = S>,
        P::IntoIter: ExactSizeIterator,
        S: AsRef<str>,
        F: IntoIterator<Item = f32>,
        T: IntoIterator<Item = i32>,
    {
        let pieces = pieces.into_iter();
        let n = pieces.len();
        // Room for 16 bytes a piece (Gemma averages 9): capacity that is never written costs
        // address space, not memory, while growing would copy the arena.
        let mut arena = Vec::with_capacity(n.saturating_mul(16));
        let mut offsets = Vec::with_capacity(n.saturating_add(1));
        offsets.push(0u32);
        let mut count = 0usize;
        for p in pieces {
            arena.extend_from_slice(p.as_ref().as_bytes());
            let end = u32::try_from(arena.len())
                .map_err(|_| TokenizerError::BadVocabSize { size: count + 1 })?;
            offsets.push(end);
            count += 1;
        }
        let scores: Vec<f32> = scores.into_iter().collect();
        let mut type_vec = Vec::with_capacity(count);
        let mut ntypes = 0usize;
        for (i, t) in types.into_iter().enumerate() {
            ntypes += 1;
            if type_vec.len() < count {
                let kind = if t == 0 {
                    PieceType::Normal
                } else {
                    PieceType::try_from(t).map_err(|value| TokenizerError::InvalidTokenType {
                        id: i as u32,
                        value,
                    })?
                };
                type_vec.push(kind);
            }
        }
        if scores.len() != count || ntypes != count {
            return Err(TokenizerError::LengthMismatch {
                pieces: count,
                scores: scores.len(),
                types: ntypes,
            });
        }
        Self::build(
            arena,
            offsets,
            scores,
            type_vec,
            config,
            Normalization {
                escape_whitespaces: true,
                remove_extra_whitespaces: false,
            },
        )
    }

    /// Builds a tokenizer from the bytes of a SentencePiece `tokenizer.model`.
    ///
    /// The special ids come from the model's trainer spec; `add_bos` is true when the model has a
    /// `bos` piece, `add_eos` false (SentencePiece's defaults; change them with
    /// [`Tokenizer::with_add_bos`] / [`Tokenizer::with_add_eos`]). Note that a Hugging Face checkpoint
    /// may mark more pieces as CONTROL than its `tokenizer.model` does (llama.cpp's converter applies
    /// `tokenizer_config.json`); this only matters with `parse_special: false`.
    ///
    /// # Errors
    /// Malformed bytes, a model type other than BPE, or a non-identity normalization rule
    /// ([`TokenizerError::UnsupportedValue`]); the errors of [`Tokenizer::from_parts`].
    pub fn from_model_proto(bytes: &[u8]) -> Result<Tokenizer, TokenizerError> {
        let raw = proto::parse_raw(bytes)?;
        if raw.trainer_spec.model_type != ModelType::Bpe {
            return Err(TokenizerError::UnsupportedValue {
                field: "TrainerSpec.model_type (only BPE is supported)",
                value: raw.trainer_spec.model_type as i64,
            });
        }
        if raw.normalizer_spec.precompiled_charsmap_len != 0 {
            return Err(TokenizerError::UnsupportedValue {
                field: "NormalizerSpec.precompiled_charsmap length (only identity normalization is supported)",
                value: raw.normalizer_spec.precompiled_charsmap_len as i64,
            });
        }
        let n = raw.pieces.len();
        let mut arena = Vec::with_capacity(bytes.len());
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u32);
        let mut scores = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        for (text, score, kind) in &raw.pieces {
            arena.extend_from_slice(text.as_bytes());
            offsets.push(
                u32::try_from(arena.len()).map_err(|_| TokenizerError::BadVocabSize { size: n })?,
            );
            scores.push(*score);
            types.push(*kind);
        }
        let id = |v: i32| u32::try_from(v).ok().filter(|&v| (v as usize) < n);
        let t = &raw.trainer_spec;
        let config = VocabConfig {
            bos: id(t.bos_id),
            eos: id(t.eos_id),
            unk: id(t.unk_id),
            pad: id(t.pad_id),
            add_bos: id(t.bos_id).is_some(),
            add_eos: false,
            add_space_prefix: raw.normalizer_spec.add_dummy_prefix,
        };
        let norm = Normalization {
            escape_whitespaces: raw.normalizer_spec.escape_whitespaces,
            remove_extra_whitespaces: raw.normalizer_spec.remove_extra_whitespaces,
        };
        Self::build(arena, offsets, scores, types, config, norm)
    }

    /// Reads a SentencePiece `tokenizer.model` file; see [`Tokenizer::from_model_proto`].
    ///
    /// # Errors
    /// [`TokenizerError::Io`] if the file cannot be read, else as [`Tokenizer::from_model_proto`].
    pub fn from_model_file(path: impl AsRef<Path>) -> Result<Tokenizer, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_model_proto(&bytes)
    }

    /// Sets whether `bos` is added to every sequence.
    pub fn with_add_bos(mut self, add: bool) -> Self {
        self.config.add_bos = add;
        self
    }

    /// Sets whether `eos` is added to every sequence.
    pub fn with_add_eos(mut self, add: bool) -> Self {
        self.config.add_eos = add;
        self
    }

    fn build(
        arena: Vec<u8>,
        offsets: Vec<u32>,
        scores: Vec<f32>,
        types: Vec<PieceType>,
        config: VocabConfig,
        norm: Normalization,
    ) -> Result<Tokenizer, TokenizerError> {
        let n = types.len();
        if n == 0 || n > (1usize << 31) {
            return Err(TokenizerError::BadVocabSize { size: n });
        }
        for (which, id) in [
            ("bos", config.bos),
            ("eos", config.eos),
            ("unk", config.unk),
            ("pad", config.pad),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(TokenizerError::SpecialIdOutOfRange {
                        which,
                        id,
                        vocab_size: n,
                    });
                }
            }
        }
        // The two hash tables and the per-piece scan are independent: with the scan cut in two
        // halves there are four tasks of similar size, which `rayon` spreads over its threads
        // (the tables alone would leave one thread waiting for the other).
        let pieces = Pieces {
            arena: &arena,
            offsets: &offsets,
            scores: &scores,
            mergeable: |i: usize| types[i] == PieceType::Normal,
        };
        let scan = |ids: std::ops::Range<usize>| Scan::collect(&pieces, &types, norm, ids);
        let mid = n / 2;
        let ((short, first), (long, second)) = rayon::join(
            || rayon::join(|| ShortTable::build(&pieces), || scan(0..mid)),
            || rayon::join(|| LongTable::build(&pieces), || scan(mid..n)),
        );
        let map = PieceMap::new(short, long);
        let Scan {
            byte_ids,
            ascii_ids,
            alpha_pairs,
            specials,
            no_split,
        } = first.then(second);
        let mut alpha_table = vec![(0.0f32, NONE); ALPHA * ALPHA];
        for (at, score, id) in alpha_pairs {
            alpha_table[at] = (score, id);
        }
        let alpha_pairs = alpha_table;
        let special = SpecialMatcher::new(specials);
        let mut no_split_last_byte = [false; 256];
        for c in &no_split {
            let mut buf = [0u8; 4];
            let last = c
                .encode_utf8(&mut buf)
                .as_bytes()
                .last()
                .copied()
                .unwrap_or(0);
            no_split_last_byte[usize::from(last)] = true;
        }
        let tok = Tokenizer {
            special,
            arena,
            offsets,
            scores,
            types,
            map,
            byte_ids,
            no_split_before_space: no_split,
            no_split_last_byte,
            config,
            norm,
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            alpha_pairs,
            ascii_ids,
        };
        Ok(tok)
    }

    /// Number of pieces in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.types.len()
    }

    /// The special-token ids and flags.
    pub fn config(&self) -> &VocabConfig {
        &self.config
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.config.bos
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.config.eos
    }

    /// Unknown-token id.
    pub fn unk_id(&self) -> Option<u32> {
        self.config.unk
    }

    /// Padding id.
    pub fn pad_id(&self) -> Option<u32> {
        self.config.pad
    }

    /// Whether `bos` is added to every sequence.
    pub fn add_bos(&self) -> bool {
        self.config.add_bos
    }

    /// Whether `eos` is added to every sequence.
    pub fn add_eos(&self) -> bool {
        self.config.add_eos
    }

    /// The text of piece `id` as stored in the vocabulary (spaces as `▁`), or `None` if out of range.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let (s, e) = (*self.offsets.get(i)?, *self.offsets.get(i + 1)?);
        std::str::from_utf8(&self.arena[s as usize..e as usize]).ok()
    }

    /// The id of the piece whose text is exactly `piece`.
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.map.get(&self.arena, piece.as_bytes()).map(|h| h.id)
    }

    /// The type of piece `id`, or `None` if out of range.
    pub fn token_type(&self, id: u32) -> Option<PieceType> {
        self.types.get(id as usize).copied()
    }

    /// The score of piece `id`, or `None` if out of range.
    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    /// Encodes `text` with the vocabulary's `bos`/`eos` flags, special-token text parsed, no length
    /// limit. Never fails.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        self.encode_raw(text, true, true, usize::MAX, &mut out);
        out
    }

    /// Encodes `text` with explicit options.
    ///
    /// # Errors
    /// [`TokenizerError::TooLong`] above `max_length` with [`Truncation::Error`];
    /// [`TokenizerError::MaxLengthTooSmall`] if `max_length` cannot hold the added special tokens.
    pub fn encode_with(
        &self,
        text: &str,
        opts: &EncodeOptions,
    ) -> Result<Vec<u32>, TokenizerError> {
        let add_bos = opts.add_special_tokens && self.config.add_bos && self.config.bos.is_some();
        let add_eos = opts.add_special_tokens && self.config.add_eos && self.config.eos.is_some();
        let specials = usize::from(add_bos) + usize::from(add_eos);
        if let Some(max) = opts.max_length {
            if max < specials {
                return Err(TokenizerError::MaxLengthTooSmall { max, specials });
            }
        }
        // With truncation, only the first `max` tokens are kept: tokenizing stops soon after
        // them (see `encode_text`), so a text far past the context costs about what one just
        // past it costs.
        let limit = match (opts.max_length, opts.truncation) {
            (Some(max), Truncation::Truncate) => max.saturating_add(1),
            _ => usize::MAX,
        };
        let mut out = Vec::with_capacity((text.len() / 3).min(limit) + 2);
        self.encode_raw(
            text,
            opts.parse_special,
            opts.add_special_tokens,
            limit,
            &mut out,
        );
        if let Some(max) = opts.max_length {
            if out.len() > max {
                match opts.truncation {
                    Truncation::Error => {
                        return Err(TokenizerError::TooLong {
                            tokens: out.len(),
                            max,
                        })
                    }
                    Truncation::Truncate => {
                        let eos = if add_eos { out.pop() } else { None };
                        out.truncate(max - usize::from(add_eos));
                        out.extend(eos);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Encodes many texts in parallel (rayon); the output is in input order.
    ///
    /// # Errors
    /// The error of the first text (in input order) that [`Tokenizer::encode_with`] rejects.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        opts: &EncodeOptions,
    ) -> Result<Vec<Vec<u32>>, TokenizerError> {
        let all: Vec<Result<Vec<u32>, TokenizerError>> = texts
            .par_iter()
            .map(|t| self.encode_with(t.as_ref(), opts))
            .collect();
        all.into_iter().collect()
    }

    /// Decodes ids to text, leaving out CONTROL and UNKNOWN tokens; see [`Tokenizer::decode_with`].
    ///
    /// # Errors
    /// [`TokenizerError::UnknownId`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_with(ids, &DecodeOptions::default())
    }

    /// Decodes ids to text: `▁` becomes a space, runs of byte pieces are reassembled into UTF-8
    /// (invalid sequences become U+FFFD), and with `add_space_prefix` the leading space is removed.
    ///
    /// # Errors
    /// [`TokenizerError::UnknownId`] for an id outside the vocabulary.
    pub fn decode_with(&self, ids: &[u32], opts: &DecodeOptions) -> Result<String, TokenizerError> {
        let mut bytes: Vec<u8> = Vec::with_capacity(ids.len() * 4);
        let mut first_text = true;
        for &id in ids {
            let kind = self.token_type(id).ok_or(TokenizerError::UnknownId {
                id,
                vocab_size: self.vocab_size(),
            })?;
            let i = id as usize;
            let text = &self.arena[self.offsets[i] as usize..self.offsets[i + 1] as usize];
            match kind {
                PieceType::Control | PieceType::Unknown => {
                    if !opts.skip_special_tokens {
                        bytes.extend_from_slice(text);
                    }
                }
                PieceType::Byte => match parse_byte_piece(text) {
                    Some(b) => bytes.push(b),
                    None => bytes.extend_from_slice(text),
                },
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused => {
                    let mut rest = text;
                    if first_text && self.config.add_space_prefix && bytes.is_empty() {
                        if let Some(r) = rest.strip_prefix(SPACE_MARK) {
                            rest = r;
                        } else if let Some(r) = rest.strip_prefix(b" ") {
                            rest = r;
                        }
                    }
                    first_text = false;
                    push_unescaped(&mut bytes, rest);
                }
            }
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Empties the calling thread's word cache (a bounded memo of recent words' ids, at most
    /// 16,384 words of up to 64 bytes). Only useful to measure cold-cache speed or to give memory back.
    pub fn clear_thread_cache() {
        SCRATCH.with(|cell| {
            if let Ok(mut s) = cell.try_borrow_mut() {
                s.cache = WordCache::default();
            }
        });
    }

    /// Encodes without length handling; appends to `out`. With a `limit` below `usize::MAX`,
    /// the text's tokens may stop once `out` holds `limit` of them (see `encode_text`): only
    /// the first `limit` are then exact.
    fn encode_raw(
        &self,
        text: &str,
        parse_special: bool,
        add_special: bool,
        limit: usize,
        out: &mut Vec<u32>,
    ) {
        if add_special && self.config.add_bos {
            out.extend(self.config.bos);
        }
        let mut run = |s: &mut Scratch| self.encode_text(text, parse_special, limit, out, s);
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => run(&mut s),
            Err(_) => run(&mut Scratch::default()),
        });
        if add_special && self.config.add_eos {
            out.extend(self.config.eos);
        }
    }

    /// Encodes `text` (without `bos`/`eos`) onto `out`, stopping once `out` holds at least
    /// `limit` tokens: later words are not merged, and a word that would cross the limit is
    /// merged from a prefix long enough for [`LIMIT_MARGIN`] tokens past the limit (doubled until
    /// it is), so its first tokens are those of the whole word unless a chain of merges reaches
    /// back more than that many tokens from the cut.
    fn encode_text(
        &self,
        text: &str,
        parse_special: bool,
        limit: usize,
        out: &mut Vec<u32>,
        s: &mut Scratch,
    ) {
        s.cache.claim(self.instance);
        let mut norm = std::mem::take(&mut s.norm);
        self.normalize(text, &mut norm);
        let b = &norm[..];
        let mut seg = 0usize;
        if !self.special.is_empty() {
            let mut i = 0usize;
            while let Some(off) = b
                .get(i..)
                .and_then(|r| r.iter().position(|&c| self.special.can_start(c)))
            {
                if out.len() >= limit {
                    break;
                }
                i += off;
                let rest = &b[i..];
                if self.special.may_match(rest) {
                    if let Some((id, len)) = self.special.longest_prefix(rest, parse_special) {
                        self.encode_segment(&b[seg..i], limit, out, s);
                        if out.len() >= limit {
                            break;
                        }
                        out.push(id);
                        i += len;
                        seg = i;
                        continue;
                    }
                }
                i += 1;
            }
        }
        if out.len() < limit {
            self.encode_segment(&b[seg..], limit, out, s);
        }
        s.norm = norm;
    }

    fn normalize(&self, text: &str, out: &mut Vec<u8>) {
        out.clear();
        let mut t = text.as_bytes();
        let rm = self.norm.remove_extra_whitespaces;
        if rm {
            while let [b' ', rest @ ..] = t {
                t = rest;
            }
            while let [rest @ .., b' '] = t {
                t = rest;
            }
        }
        out.reserve(t.len() + t.len() / 4 + 3);
        if t.is_empty() {
            return;
        }
        if self.config.add_space_prefix {
            out.extend_from_slice(if self.norm.escape_whitespaces {
                SPACE_MARK
            } else {
                b" "
            });
        }
        if !self.norm.escape_whitespaces && !rm {
            out.extend_from_slice(t);
            return;
        }
        let mark: &[u8] = if self.norm.escape_whitespaces {
            SPACE_MARK
        } else {
            b" "
        };
        let mut rest = t;
        while let Some(p) = rest.iter().position(|&c| c == b' ') {
            out.extend_from_slice(&rest[..p]);
            out.extend_from_slice(mark);
            rest = &rest[p + 1..];
            if rm {
                while let [b' ', r @ ..] = rest {
                    rest = r;
                }
            }
        }
        out.extend_from_slice(rest);
    }

    /// Encodes a stretch of normalized text that holds no special piece: splits it into words at
    /// `▁` where no piece can span the cut, and merges each word.
    fn encode_segment(&self, seg: &[u8], limit: usize, out: &mut Vec<u32>, s: &mut Scratch) {
        if seg.is_empty() {
            return;
        }
        let mut word_start = 0usize;
        let mut from = 1usize;
        while let Some(off) = seg
            .get(from..)
            .and_then(|r| r.iter().position(|&b| b == 0xE2))
        {
            let i = from + off;
            from = i + 1;
            if !seg[i..].starts_with(SPACE_MARK) || i <= word_start {
                continue;
            }
            // The character before the `▁` (walk back over at most three continuation bytes).
            let mut p = i - 1;
            while p > word_start && seg[p] & 0xC0 == 0x80 && i - p < 4 {
                p -= 1;
            }
            let prev = &seg[p..i];
            if prev == SPACE_MARK {
                continue;
            }
            if prev
                .last()
                .is_some_and(|&l| self.no_split_last_byte[usize::from(l)])
                && self.no_split_before_space.contains(&decode_char(prev))
            {
                continue;
            }
            if out.len() >= limit {
                return;
            }
            self.encode_word_limited(&seg[word_start..i], limit, out, s);
            word_start = i;
            from = i + SPACE_MARK.len();
        }
        if out.len() < limit {
            self.encode_word_limited(&seg[word_start..], limit, out, s);
        }
    }

    /// [`Tokenizer::encode_word`] for a word that may run past `limit` tokens in `out`: a long
    /// word is merged from a prefix only (see `encode_text`).
    fn encode_word_limited(&self, word: &[u8], limit: usize, out: &mut Vec<u32>, s: &mut Scratch) {
        let wanted = limit.saturating_sub(out.len()).saturating_add(LIMIT_MARGIN);
        // Words up to a few bytes per wanted token are merged whole, as without a limit.
        let mut cut = wanted.saturating_mul(4);
        if word.len() <= cut.max(wanted) {
            self.encode_word(word, out, s);
            return;
        }
        let start = out.len();
        loop {
            // Back to a character boundary.
            let mut end = cut.min(word.len());
            while end < word.len() && end > 0 && word[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            self.merge_word(&word[..end], out, s);
            if out.len() - start >= wanted || end == word.len() {
                return;
            }
            out.truncate(start);
            cut = cut.saturating_mul(2);
        }
    }

    /// Emits the ids of one final symbol that was not produced by a merge: the piece if the
    /// character is one, else its bytes as `<0xXX>`, else `unk`.
    #[inline]
    fn emit_unmerged(&self, text: &[u8], out: &mut Vec<u32>) {
        if let [c] = text {
            if let Some(&id) = self.ascii_ids.get(usize::from(*c)) {
                if id != NONE {
                    out.push(id);
                    return;
                }
            }
        }
        if let Some(h) = self.map.get(&self.arena, text) {
            if h.mergeable {
                out.push(h.id);
                return;
            }
        }
        if text.iter().all(|&b| self.byte_ids[usize::from(b)] != NONE) {
            out.extend(text.iter().map(|&b| self.byte_ids[usize::from(b)]));
        } else if let Some(unk) = self.config.unk {
            out.push(unk);
        }
    }

    #[inline]
    fn pair(&self, text: &[u8]) -> (f32, u32) {
        self.map.pair(&self.arena, text)
    }

    /// Encodes one word, through the per-thread word cache.
    fn encode_word(&self, word: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
        if word.len() < 2 || word.len() > MAX_WORD {
            self.merge_word(word, out, s);
            return;
        }
        let h = hash_long(word);
        if let Some(ids) = s.cache.get(word, h) {
            out.extend_from_slice(ids);
            return;
        }
        let start = out.len();
        self.merge_word(word, out, s);
        s.cache.insert(word, h, &out[start..]);
    }

    /// Merges one word's characters into pieces.
    fn merge_word(&self, word: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
        const END: u8 = u8::MAX;
        const _: () = assert!(SMALL_WORD < END as usize);
        // Symbols (one per character) in fixed arrays linked by index, the score of the pair
        // starting at each live symbol beside it, and a scan for the best pair (highest score,
        // leftmost on ties) per merge: no allocation, no shifting. Longer words go to the heap.
        let mut start = [0u32; SMALL_WORD];
        let mut end = [0u32; SMALL_WORD];
        let mut small = [0u8; SMALL_WORD];
        let mut n = 0usize;
        let mut i = 0usize;
        while i < word.len() {
            if n == SMALL_WORD {
                self.encode_word_heap(word, out, s);
                return;
            }
            let w = utf8_width(word[i]).min(word.len() - i);
            start[n] = i as u32;
            end[n] = (i + w) as u32;
            small[n] = alpha(&word[i..i + w]).map_or(END, |x| x as u8);
            n += 1;
            i += w;
        }
        if n <= 1 {
            if n == 1 {
                self.emit_unmerged(word, out);
            }
            return;
        }
        let mut sym_id = [NONE; SMALL_WORD];
        let mut next = [END; SMALL_WORD];
        let mut prev = [END; SMALL_WORD];
        // Pair (k, next[k]): score and piece id (`NONE`: not a piece, or k is dead / last).
        let mut pscore = [0f32; SMALL_WORD];
        let mut pid = [NONE; SMALL_WORD];
        for k in 0..n - 1 {
            next[k] = (k + 1) as u8;
            prev[k + 1] = k as u8;
            (pscore[k], pid[k]) = if small[k] != END && small[k + 1] != END {
                self.alpha_pairs[usize::from(small[k]) * ALPHA + usize::from(small[k + 1])]
            } else {
                self.pair(&word[start[k] as usize..end[k + 1] as usize])
            };
        }
        loop {
            let mut best = usize::MAX;
            let mut best_score = 0.0f32;
            let mut k = 0usize;
            loop {
                if pid[k] != NONE && (best == usize::MAX || pscore[k] > best_score) {
                    best = k;
                    best_score = pscore[k];
                }
                let nk = next[k];
                if nk == END {
                    break;
                }
                k = usize::from(nk);
            }
            if best == usize::MAX {
                break;
            }
            let k = best;
            let r = usize::from(next[k]);
            end[k] = end[r];
            sym_id[k] = pid[k];
            pid[r] = NONE;
            let rn = next[r];
            next[k] = rn;
            if rn != END {
                prev[usize::from(rn)] = k as u8;
                (pscore[k], pid[k]) =
                    self.pair(&word[start[k] as usize..end[usize::from(rn)] as usize]);
            } else {
                pid[k] = NONE;
            }
            let p = prev[k];
            if p != END {
                let p = usize::from(p);
                (pscore[p], pid[p]) = self.pair(&word[start[p] as usize..end[k] as usize]);
            }
        }
        let mut k = 0u8;
        while k != END {
            let i = usize::from(k);
            if sym_id[i] != NONE {
                out.push(sym_id[i]);
            } else {
                self.emit_unmerged(&word[start[i] as usize..end[i] as usize], out);
            }
            k = next[i];
        }
    }

    /// The priority-queue merge (llama.cpp's `llm_tokenizer_spm::tokenize`) for long words.
    fn encode_word_heap(&self, word: &[u8], out: &mut Vec<u32>, s: &mut Scratch) {
        let links = &mut s.links;
        links.clear();
        let mut i = 0usize;
        while i < word.len() {
            let w = utf8_width(word[i]).min(word.len() - i);
            let k = links.len() as u32;
            links.push(Link {
                start: i as u32,
                end: (i + w) as u32,
                prev: k.checked_sub(1).unwrap_or(NONE),
                next: k + 1,
                id: NONE,
            });
            i += w;
        }
        let n = links.len();
        if let Some(last) = links.last_mut() {
            last.next = NONE;
        }
        let heap = &mut s.heap;
        heap.clear();
        let try_add = |heap: &mut BinaryHeap<Bigram>, links: &[Link], left: u32, right: u32| {
            if left == NONE || right == NONE {
                return;
            }
            let (l, r) = (links[left as usize], links[right as usize]);
            let (score, id) = self.pair(&word[l.start as usize..r.end as usize]);
            if id != NONE {
                let key = (u64::from(score_key(score)) << 32) | u64::from(!left);
                heap.push((key, right, r.end - l.start, id));
            }
        };
        for k in 1..n {
            try_add(heap, links, k as u32 - 1, k as u32);
        }
        while let Some((key, bg_right, bg_size, bg_id)) = heap.pop() {
            let bg_left = !(key as u32);
            let (l, r) = (links[bg_left as usize], links[bg_right as usize]);
            // Stale entry: one side was merged away or grew since the pair was queued.
            if l.end == l.start
                || r.end == r.start
                || (l.end - l.start) + (r.end - r.start) != bg_size
            {
                continue;
            }
            {
                let left = &mut links[bg_left as usize];
                left.end = r.end;
                left.next = r.next;
                left.id = bg_id;
            }
            links[bg_right as usize].end = links[bg_right as usize].start;
            if r.next != NONE {
                links[r.next as usize].prev = bg_left;
            }
            let (prev, next) = (l.prev, r.next);
            try_add(heap, links, prev, bg_left);
            try_add(heap, links, bg_left, next);
        }
        let mut k = 0u32;
        while k != NONE {
            let l = links[k as usize];
            if l.id != NONE {
                out.push(l.id);
            } else {
                self.emit_unmerged(&word[l.start as usize..l.end as usize], out);
            }
            k = l.next;
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Width of the UTF-8 sequence starting with `b` (1 for a stray continuation byte).
#[inline(always)]
fn utf8_width(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The one character in `b` (a complete UTF-8 sequence), or U+FFFD.
fn decode_char(b: &[u8]) -> char {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.chars().next())
        .unwrap_or('\u{FFFD}')
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `▁` occurs in `text` after its first byte. Looks for its lead byte 0xE2 eight bytes at a
/// time (the exact "has a zero byte" bit trick), since this runs once per piece while building.
#[inline]
fn has_inner_space_mark(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let Some(rest) = text.get(1..) else {
        return false;
    };
    if rest.len() < 3 {
        return false;
    }
    let found_lead = rest.chunks(8).any(|c| {
        // Bytes past a short chunk are zero in `load_le`, so they never equal 0xE2.
        let v = load_le(c) ^ (0xE2 * ONES);
        v.wrapping_sub(ONES) & !v & HIGHS != 0
    });
    found_lead && rest.windows(3).any(|w| w == SPACE_MARK)
}

/// Adds to `set` every character of `text` that is directly followed by `▁`.
fn record_space_predecessors(text: &[u8], set: &mut Vec<char>) {
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    let mut prev = None;
    for c in s.chars() {
        if c == '\u{2581}' {
            if let Some(p) = prev {
                set.push(p);
            }
        }
        prev = Some(c);
    }
}

/// `<0xAB>` → `0xAB`.
fn parse_byte_piece(text: &[u8]) -> Option<u8> {
    let hex = text.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    if hex.len() != 2 {
        return None;
    }
    let s = std::str::from_utf8(hex).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// Appends `text` with every `▁` turned into a space.
fn push_unescaped(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while let Some(p) = memfind(rest, SPACE_MARK) {
        out.extend_from_slice(&rest[..p]);
        out.push(b' ');
        rest = &rest[p + 3..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_key_preserves_order() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -255_504.0,
            -1.5,
            -1e-30,
            -0.0,
            0.0,
            1e-30,
            2.0,
            1e30,
            f32::INFINITY,
        ];
        for a in xs {
            for b in xs {
                assert_eq!(
                    score_key(a).cmp(&score_key(b)),
                    a.partial_cmp(&b).unwrap(),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn inner_space_mark_detection() {
        let slow = |t: &[u8]| t.len() > 1 && t[1..].windows(3).any(|w| w == SPACE_MARK);
        let samples = [
            "",
            "▁",
            "▁a",
            "a▁",
            ">▁</",
            "▁▁",
            "ab▁",
            "abcdefgh▁",
            "abcdefghij▁k",
            "—…",
            "é▁",
            "aaaaaaa\u{e2}",
            "\u{2500}\u{2581}",
            "▁abcdefghijklmnop",
            "abcdefghijklmnop▁",
        ];
        for s in samples {
            assert_eq!(
                has_inner_space_mark(s.as_bytes()),
                slow(s.as_bytes()),
                "{s:?}"
            );
        }
        for b in [0xE2u8, 0x96, 0x81, 0xE1, 0xE3, 0x62] {
            for pos in 0..20 {
                let mut v = vec![b'x'; 20];
                v[pos] = b;
                assert!(!has_inner_space_mark(&v));
            }
        }
    }
}
