//! The tokenizer: vocabulary, BERT normalization and pre-tokenization, greedy longest-match
//! WordPiece, special tokens, truncation, batch encoding and decoding.

use std::cell::RefCell;
use std::path::Path;

use rayon::prelude::*;
use unicode_normalization::UnicodeNormalization;

use crate::chars::{
    ascii_classes, is_chinese, is_control, is_mark_nonspacing, is_punctuation, is_whitespace,
    AsciiClass,
};
use crate::trie::{Root, Trie};
use crate::TokenizerError;

/// The most bytes of token text accepted (BERT's 30,522 tokens take 230 kB): bounds the tries.
const MAX_VOCAB_BYTES: usize = 1 << 28;

/// The most tokens accepted (ids are `u32`).
const MAX_TOKENS: usize = 1 << 31;

/// `▁` (U+2581): llama.cpp's GGUF vocabularies mark word-initial tokens with it.
const PHANTOM_SPACE: &str = "\u{2581}";

/// BERT's text normalization (Hugging Face's `BertNormalizer`), as a model's tokenizer config sets
/// it (`tokenizer.json` → `normalizer`, or `tokenizer_config.json`'s `do_lower_case` /
/// `strip_accents` / `tokenize_chinese_chars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalization {
    /// Remove control and format characters (categories Cc, Cf, Co), NUL and U+FFFD, and turn
    /// every whitespace character into a space.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs, so each becomes a word of its own.
    pub handle_chinese_chars: bool,
    /// Decompose (NFD) and remove non-spacing marks; `None` follows `lowercase` (the default of
    /// Hugging Face and of Google's original BERT).
    pub strip_accents: Option<bool>,
    /// Lower-case every character (after stripping accents).
    pub lowercase: bool,
}

impl Normalization {
    /// Uncased BERT (all-MiniLM-L6-v2, bge, e5, bert-base-uncased): everything on.
    pub const UNCASED: Normalization = Normalization {
        clean_text: true,
        handle_chinese_chars: true,
        strip_accents: None,
        lowercase: true,
    };

    /// Cased BERT (bert-base-cased): no lower-casing and, through `strip_accents: None`, no
    /// accent stripping.
    pub const CASED: Normalization = Normalization {
        lowercase: false,
        ..Normalization::UNCASED
    };

    /// Whether accents are stripped: `strip_accents`, else `lowercase`.
    pub fn strips_accents(&self) -> bool {
        self.strip_accents.unwrap_or(self.lowercase)
    }
}

impl Default for Normalization {
    /// [`Normalization::UNCASED`].
    fn default() -> Self {
        Normalization::UNCASED
    }
}

/// How the vocabulary marks word-initial and continuation tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VocabStyle {
    /// [`VocabStyle::PhantomSpace`] if more tokens start with `▁` than with `##` (a `▁` form of
    /// a vocabulary with `####` has a few `##` tokens), else [`VocabStyle::WordPiece`].
    #[default]
    Auto,
    /// `vocab.txt` and `tokenizer.json`: continuation tokens start with `##`, all others start a
    /// word.
    WordPiece,
    /// llama.cpp's GGUF arrays (`tokenizer.ggml.tokens` of a `bert` model): word-initial tokens
    /// start with `▁`, continuation tokens have no mark, special tokens are stored as they are.
    PhantomSpace,
}

/// Special tokens, normalization and limits of a vocabulary.
///
/// Special ids left `None` are looked up by their usual names (`[UNK]`, `[CLS]`, `[SEP]`,
/// `[PAD]`, `[MASK]`); a GGUF reader sets them from `tokenizer.ggml.unknown_token_id`,
/// `cls_token_id`, `seperator_token_id`, `padding_token_id` and `mask_token_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabConfig {
    /// The unknown token, for words WordPiece cannot cover (required).
    pub unk: Option<u32>,
    /// The classification token put in front of every sequence.
    pub cls: Option<u32>,
    /// The separator token put at the end of every sequence.
    pub sep: Option<u32>,
    /// The padding token (only reported; encoding never pads).
    pub pad: Option<u32>,
    /// The mask token.
    pub mask: Option<u32>,
    /// Put `cls` in front of every sequence (default true).
    pub add_cls: bool,
    /// Put `sep` at the end of every sequence (default true).
    pub add_sep: bool,
    /// Text normalization (default uncased).
    pub normalization: Normalization,
    /// Words of more characters than this become `unk` whole (default 100, Hugging Face's
    /// `max_input_chars_per_word`).
    pub max_input_chars_per_word: usize,
    /// How the tokens are written (default: detected).
    pub style: VocabStyle,
}

impl Default for VocabConfig {
    fn default() -> Self {
        VocabConfig {
            unk: None,
            cls: None,
            sep: None,
            pad: None,
            mask: None,
            add_cls: true,
            add_sep: true,
            normalization: Normalization::UNCASED,
            max_input_chars_per_word: 100,
            style: VocabStyle::Auto,
        }
    }
}

/// What to do when a text encodes to more than `max_length` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// Keep the first tokens; `[CLS]` and `[SEP]` (when added) stay at the ends.
    #[default]
    Truncate,
    /// Fail with [`TokenizerError::TooLong`].
    Error,
}

/// Options for [`Tokenizer::encode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add `[CLS]`/`[SEP]` as the configuration says (default true).
    pub add_special_tokens: bool,
    /// Match special-token text in the input (e.g. `[SEP]`) as that token, before normalization,
    /// as Hugging Face does with its added tokens (default true).
    pub parse_special: bool,
    /// Maximum number of tokens, special tokens included (default none; all-MiniLM-L6-v2 runs
    /// with 256).
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
    /// Leave out the special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[UNK]`, `[MASK]`); default true.
    pub skip_special_tokens: bool,
    /// Hugging Face's WordPiece decoder `cleanup`: no space before `.`, `?`, `!`, `,` and a few
    /// English contractions (default true, as in BERT's `tokenizer.json`).
    pub cleanup: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            skip_special_tokens: true,
            cleanup: true,
        }
    }
}

/// A BERT WordPiece tokenizer, built once per vocabulary.
///
/// Cheap to share: `Tokenizer` is `Send + Sync` and every method takes `&self`.
pub struct Tokenizer {
    /// All token texts as given, back to back.
    arena: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` is token `i` in `arena`.
    offsets: Vec<u32>,
    trie: Trie,
    /// `(text, id)` of the special tokens matched in the input, longest first.
    specials: Vec<(Vec<u8>, u32)>,
    /// Bytes that start some special token's text.
    special_first: [bool; 256],
    /// The configuration with the special ids resolved and the style decided.
    config: VocabConfig,
    ascii: [AsciiClass; 128],
    strip_accents: bool,
}

#[derive(Default)]
struct Scratch {
    /// The current word, normalized.
    word: Vec<u8>,
    /// Its length in characters.
    word_chars: usize,
    /// A run of non-ASCII characters after cleaning.
    stage: Vec<char>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Tokenizer {
    /// Builds a tokenizer from the tokens in id order: the lines of a `vocab.txt`, or GGUF's
    /// `tokenizer.ggml.tokens` (llama.cpp's `▁` form is detected, see [`VocabStyle`]).
    ///
    /// Of two equal tokens the later id is produced (as Hugging Face's vocabulary map does).
    ///
    /// # Errors
    /// [`TokenizerError::BadVocabSize`], [`TokenizerError::VocabTooLarge`] (more than 256 MiB of
    /// token text), [`TokenizerError::SpecialIdOutOfRange`], and
    /// [`TokenizerError::MissingSpecialToken`] when there is no `unk` token, or no `cls`/`sep`
    /// while `add_cls`/`add_sep` is set.
    pub fn from_parts<P, S>(tokens: P, config: VocabConfig) -> Result<Tokenizer, TokenizerError>
    where
        P: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tokens = tokens.into_iter();
        let mut arena = Vec::with_capacity(tokens.size_hint().0.saturating_mul(8));
        let mut offsets = Vec::with_capacity(tokens.size_hint().0.saturating_add(1));
        offsets.push(0u32);
        for t in tokens {
            arena.extend_from_slice(t.as_ref().as_bytes());
            if arena.len() > MAX_VOCAB_BYTES {
                return Err(TokenizerError::VocabTooLarge {
                    bytes: arena.len(),
                    max: MAX_VOCAB_BYTES,
                });
            }
            if offsets.len() > MAX_TOKENS {
                return Err(TokenizerError::BadVocabSize {
                    size: offsets.len(),
                });
            }
            offsets.push(arena.len() as u32);
        }
        Self::build(arena, offsets, config)
    }

    /// Builds a tokenizer from the text of a `vocab.txt` (one token a line, id = line number
    /// from 0; trailing whitespace and `\r` are removed, as Hugging Face reads it).
    ///
    /// # Errors
    /// As [`Tokenizer::from_parts`].
    pub fn from_vocab_text(text: &str, config: VocabConfig) -> Result<Tokenizer, TokenizerError> {
        Self::from_parts(text.lines().map(str::trim_end), config)
    }

    /// Reads a `vocab.txt`; see [`Tokenizer::from_vocab_text`].
    ///
    /// # Errors
    /// [`TokenizerError::Io`], [`TokenizerError::NotUtf8`], else as [`Tokenizer::from_parts`].
    pub fn from_vocab_file(
        path: impl AsRef<Path>,
        config: VocabConfig,
    ) -> Result<Tokenizer, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Self::from_vocab_text(text, config),
            Err(e) => {
                let line = bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                Err(TokenizerError::NotUtf8 { line })
            }
        }
    }

    fn build(
        arena: Vec<u8>,
        offsets: Vec<u32>,
        mut config: VocabConfig,
    ) -> Result<Tokenizer, TokenizerError> {
        let n = offsets.len() - 1;
        if n == 0 || n > MAX_TOKENS {
            return Err(TokenizerError::BadVocabSize { size: n });
        }
        let text = |i: usize| &arena[offsets[i] as usize..offsets[i + 1] as usize];
        let slots: [(&'static str, &'static str, &mut Option<u32>); 5] = [
            ("unk", "[UNK]", &mut config.unk),
            ("cls", "[CLS]", &mut config.cls),
            ("sep", "[SEP]", &mut config.sep),
            ("pad", "[PAD]", &mut config.pad),
            ("mask", "[MASK]", &mut config.mask),
        ];
        for (which, name, slot) in slots {
            match *slot {
                Some(id) if id as usize >= n => {
                    return Err(TokenizerError::SpecialIdOutOfRange {
                        which,
                        id,
                        vocab_size: n,
                    })
                }
                Some(_) => {}
                None => {
                    *slot = (0..n)
                        .rev()
                        .find(|&i| text(i) == name.as_bytes())
                        .map(|i| i as u32)
                }
            }
        }
        for (which, name, needed, id) in [
            ("unk", "[UNK]", true, config.unk),
            ("cls", "[CLS]", config.add_cls, config.cls),
            ("sep", "[SEP]", config.add_sep, config.sep),
        ] {
            if needed && id.is_none() {
                return Err(TokenizerError::MissingSpecialToken { which, name });
            }
        }
        let special_ids: Vec<u32> = [config.unk, config.cls, config.sep, config.pad, config.mask]
            .into_iter()
            .flatten()
            .collect();
        if config.style == VocabStyle::Auto {
            let (mut phantom, mut hashes) = (0usize, 0usize);
            for i in 0..n {
                let t = text(i);
                phantom += usize::from(t.starts_with(PHANTOM_SPACE.as_bytes()));
                hashes += usize::from(t.starts_with(b"##"));
            }
            config.style = if phantom > hashes {
                VocabStyle::PhantomSpace
            } else {
                VocabStyle::WordPiece
            };
        }
        let phantom = config.style == VocabStyle::PhantomSpace;
        let trie = Trie::build((0..n).filter_map(|i| {
            let t = text(i);
            let id = i as u32;
            if phantom {
                if special_ids.contains(&id) {
                    None
                } else if let Some(rest) = t.strip_prefix(PHANTOM_SPACE.as_bytes()) {
                    Some((Root::Start, rest, id))
                } else {
                    Some((Root::Continuation, t, id))
                }
            } else if let Some(rest) = t.strip_prefix(b"##") {
                Some((Root::Continuation, rest, id))
            } else {
                Some((Root::Start, t, id))
            }
        }))
        .ok_or(TokenizerError::VocabTooLarge {
            bytes: arena.len(),
            max: MAX_VOCAB_BYTES,
        })?;
        let mut specials: Vec<(Vec<u8>, u32)> = Vec::new();
        for &id in &special_ids {
            let t = text(id as usize);
            if !t.is_empty() && !specials.iter().any(|(s, _)| s == t) {
                specials.push((t.to_vec(), id));
            }
        }
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let mut special_first = [false; 256];
        for (t, _) in &specials {
            special_first[usize::from(t[0])] = true;
        }
        let norm = config.normalization;
        Ok(Tokenizer {
            trie,
            specials,
            special_first,
            ascii: ascii_classes(norm.clean_text, norm.lowercase),
            strip_accents: norm.strips_accents(),
            config,
            arena,
            offsets,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The configuration, with the special ids resolved and the style decided.
    pub fn config(&self) -> &VocabConfig {
        &self.config
    }

    /// The unknown token's id.
    pub fn unk_id(&self) -> u32 {
        // `build` rejects vocabularies without one.
        self.config.unk.unwrap_or_default()
    }

    /// The `[CLS]` id, if the vocabulary has one.
    pub fn cls_id(&self) -> Option<u32> {
        self.config.cls
    }

    /// The `[SEP]` id, if the vocabulary has one.
    pub fn sep_id(&self) -> Option<u32> {
        self.config.sep
    }

    /// The `[PAD]` id, if the vocabulary has one.
    pub fn pad_id(&self) -> Option<u32> {
        self.config.pad
    }

    /// The `[MASK]` id, if the vocabulary has one.
    pub fn mask_id(&self) -> Option<u32> {
        self.config.mask
    }

    /// The text of token `id` as stored in the vocabulary, or `None` if out of range.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let (s, e) = (*self.offsets.get(i)?, *self.offsets.get(i + 1)?);
        std::str::from_utf8(&self.arena[s as usize..e as usize]).ok()
    }

    /// The id of the token stored exactly as `token` (the last one, if several are). A linear
    /// scan of the vocabulary, for occasional use.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        (0..self.vocab_size() as u32)
            .rev()
            .find(|&i| self.token_bytes(i) == token.as_bytes())
    }

    /// Whether `id` is one of the special tokens (`unk`, `cls`, `sep`, `pad`, `mask`).
    pub fn is_special(&self, id: u32) -> bool {
        let c = &self.config;
        [c.unk, c.cls, c.sep, c.pad, c.mask].contains(&Some(id))
    }

    fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.arena[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Encodes `text` with `[CLS]`/`[SEP]` as configured, special-token text parsed, no length
    /// limit. Never fails.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 4 + 2);
        self.encode_raw(text, true, true, &mut out);
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
        let add_cls = opts.add_special_tokens && self.config.add_cls;
        let add_sep = opts.add_special_tokens && self.config.add_sep;
        let specials = usize::from(add_cls) + usize::from(add_sep);
        if let Some(max) = opts.max_length {
            if max < specials {
                return Err(TokenizerError::MaxLengthTooSmall { max, specials });
            }
        }
        let mut out = Vec::with_capacity(text.len() / 4 + 2);
        self.encode_raw(text, opts.parse_special, opts.add_special_tokens, &mut out);
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
                        let sep = if add_sep { out.pop() } else { None };
                        out.truncate(max - usize::from(add_sep));
                        out.extend(sep);
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

    /// Decodes ids to text, special tokens left out, with cleanup; see [`Tokenizer::decode_with`].
    ///
    /// # Errors
    /// [`TokenizerError::UnknownId`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_with(ids, &DecodeOptions::default())
    }

    /// Decodes ids as Hugging Face's WordPiece decoder does: tokens joined by spaces, continuation
    /// tokens glued to the previous one without their `##` (a continuation token first keeps it).
    /// Normalization is not undone: the text comes back lower-cased, without accents, with
    /// spaces around punctuation (except where `cleanup` removes them).
    ///
    /// # Errors
    /// [`TokenizerError::UnknownId`] for an id outside the vocabulary.
    pub fn decode_with(&self, ids: &[u32], opts: &DecodeOptions) -> Result<String, TokenizerError> {
        let mut out = String::with_capacity(ids.len() * 6);
        let mut first = true;
        let mut piece = String::new();
        for &id in ids {
            let text = self.id_to_token(id).ok_or(TokenizerError::UnknownId {
                id,
                vocab_size: self.vocab_size(),
            })?;
            if opts.skip_special_tokens && self.is_special(id) {
                continue;
            }
            let (continuation, body) = match self.config.style {
                VocabStyle::PhantomSpace if !self.is_special(id) => {
                    match text.strip_prefix(PHANTOM_SPACE) {
                        Some(rest) => (false, rest),
                        None => (true, text),
                    }
                }
                _ => match text.strip_prefix("##") {
                    Some(rest) => (true, rest),
                    None => (false, text),
                },
            };
            piece.clear();
            if first {
                if continuation {
                    piece.push_str("##");
                }
            } else if !continuation {
                piece.push(' ');
            }
            piece.push_str(body);
            first = false;
            if opts.cleanup && piece.contains(' ') {
                out.push_str(&cleanup(&piece));
            } else {
                out.push_str(&piece);
            }
        }
        Ok(out)
    }

    /// Encodes without length handling; appends to `out`.
    fn encode_raw(&self, text: &str, parse_special: bool, add_special: bool, out: &mut Vec<u32>) {
        if add_special && self.config.add_cls {
            out.extend(self.config.cls);
        }
        let mut run = |s: &mut Scratch| self.encode_text(text, parse_special, out, s);
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => run(&mut s),
            Err(_) => run(&mut Scratch::default()),
        });
        if add_special && self.config.add_sep {
            out.extend(self.config.sep);
        }
    }

    /// Splits off special-token text (leftmost-longest, on the raw text), encodes the rest.
    fn encode_text(&self, text: &str, parse_special: bool, out: &mut Vec<u32>, s: &mut Scratch) {
        let b = text.as_bytes();
        let mut seg = 0usize;
        if parse_special && !self.specials.is_empty() {
            let mut i = 0usize;
            while let Some(off) = b
                .get(i..)
                .and_then(|r| r.iter().position(|&c| self.special_first[usize::from(c)]))
            {
                let p = i + off;
                let rest = &b[p..];
                // Longest first: the first match is the longest.
                match self.specials.iter().find(|(t, _)| rest.starts_with(t)) {
                    Some((t, id)) => {
                        // `p` starts a special token's text (valid UTF-8), so it is a char
                        // boundary, as is `p + t.len()`.
                        self.encode_segment(&text[seg..p], out, s);
                        out.push(*id);
                        i = p + t.len();
                        seg = i;
                    }
                    None => i = p + 1,
                }
            }
        }
        self.encode_segment(&text[seg..], out, s);
    }

    /// Normalizes, pre-tokenizes and WordPiece-encodes a stretch of text without special tokens.
    ///
    /// ASCII bytes go through one table lookup each (drop, space, punctuation, or a lower-cased
    /// word byte). Runs of non-ASCII characters take the general path: cleaning, CJK spacing, NFD
    /// and mark removal, lower-casing. A run is decomposed as a whole; ASCII characters are
    /// canonical starters, so NFD's reordering never crosses the run's ends and the result equals
    /// normalizing the whole text at once.
    fn encode_segment(&self, text: &str, out: &mut Vec<u32>, s: &mut Scratch) {
        let b = text.as_bytes();
        s.word.clear();
        s.word_chars = 0;
        let mut i = 0usize;
        while i < b.len() {
            let c = b[i];
            if c < 128 {
                match self.ascii[usize::from(c)] {
                    AsciiClass::Word(x) => {
                        s.word.push(x);
                        s.word_chars += 1;
                    }
                    AsciiClass::Space => self.flush(out, s),
                    AsciiClass::Punct => {
                        self.flush(out, s);
                        self.word_piece(&[c], 1, out);
                    }
                    AsciiClass::Drop => {}
                }
                i += 1;
            } else {
                let start = i;
                while i < b.len() && b[i] >= 128 {
                    i += 1;
                }
                // ASCII bytes are char boundaries, so `start..i` is one.
                self.normalize_run(&text[start..i], out, s);
            }
        }
        self.flush(out, s);
    }

    /// The general path for a run of non-ASCII characters.
    fn normalize_run(&self, run: &str, out: &mut Vec<u32>, s: &mut Scratch) {
        let norm = &self.config.normalization;
        let mut stage = std::mem::take(&mut s.stage);
        stage.clear();
        for c in run.chars() {
            if norm.clean_text {
                if c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    stage.push(' ');
                    continue;
                }
            }
            if norm.handle_chinese_chars && is_chinese(c) {
                stage.extend([' ', c, ' ']);
            } else {
                stage.push(c);
            }
        }
        if self.strip_accents {
            for c in stage.iter().copied().nfd() {
                if !is_mark_nonspacing(c) {
                    self.push_lowered(c, out, s);
                }
            }
        } else {
            for &c in &stage {
                self.push_lowered(c, out, s);
            }
        }
        s.stage = stage;
    }

    #[inline]
    fn push_lowered(&self, c: char, out: &mut Vec<u32>, s: &mut Scratch) {
        if self.config.normalization.lowercase {
            for l in c.to_lowercase() {
                self.push_char(l, out, s);
            }
        } else {
            self.push_char(c, out, s);
        }
    }

    /// Pre-tokenizes one normalized character.
    #[inline]
    fn push_char(&self, c: char, out: &mut Vec<u32>, s: &mut Scratch) {
        if is_whitespace(c) {
            self.flush(out, s);
        } else if is_punctuation(c) {
            self.flush(out, s);
            let mut buf = [0u8; 4];
            self.word_piece(c.encode_utf8(&mut buf).as_bytes(), 1, out);
        } else {
            let mut buf = [0u8; 4];
            s.word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            s.word_chars += 1;
        }
    }

    /// Encodes the current word, if any, and starts a new one.
    #[inline]
    fn flush(&self, out: &mut Vec<u32>, s: &mut Scratch) {
        if !s.word.is_empty() {
            self.word_piece(&s.word, s.word_chars, out);
            s.word.clear();
            s.word_chars = 0;
        }
    }

    /// Greedy longest-match WordPiece over one word of `chars` characters: `unk` alone when the
    /// word is too long or some position has no matching token.
    fn word_piece(&self, word: &[u8], chars: usize, out: &mut Vec<u32>) {
        let unk = self.unk_id();
        if chars > self.config.max_input_chars_per_word {
            out.push(unk);
            return;
        }
        let start = out.len();
        let mut pos = 0usize;
        let mut root = Root::Start;
        while pos < word.len() {
            match self.trie.longest_prefix(root, &word[pos..]) {
                Some((len, id)) => {
                    out.push(id);
                    pos += len;
                    root = Root::Continuation;
                }
                None => {
                    out.truncate(start);
                    out.push(unk);
                    return;
                }
            }
        }
    }
}

/// Hugging Face's WordPiece decoder cleanup, applied to one token's text.
fn cleanup(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
