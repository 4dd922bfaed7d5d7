//! A small, hand-written reader for SentencePiece's `tokenizer.model` (a `ModelProto` protobuf).
//!
//! Only the fields a tokenizer (or a GGUF converter) needs are decoded; every other field is
//! skipped by wire type, as protobuf requires. The reader never panics: each length read from the
//! file is checked against the bytes that remain before anything is sliced or allocated, and
//! nesting is bounded (SentencePiece messages are at most two levels deep).
//!
//! Field numbers follow `sentencepiece_model.proto` (proto2):
//! `ModelProto { pieces = 1; trainer_spec = 2; normalizer_spec = 3; }`,
//! `SentencePiece { piece = 1; score = 2; type = 3 [default NORMAL]; }`,
//! `TrainerSpec { model_type = 3; vocab_size = 4; treat_whitespace_as_suffix = 24; split_digits = 25;
//! allow_whitespace_only_pieces = 26; byte_fallback = 35; unk_id = 40; bos_id = 41; eos_id = 42;
//! pad_id = 43; }`,
//! `NormalizerSpec { name = 1; precompiled_charsmap = 2; add_dummy_prefix = 3;
//! remove_extra_whitespaces = 4; escape_whitespaces = 5; }`.

use crate::TokenizerError;

/// The type of a vocabulary entry, numbered as in SentencePiece (and GGUF's `tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PieceType {
    /// An ordinary piece produced by segmentation.
    Normal = 1,
    /// The unknown piece (`<unk>`).
    Unknown = 2,
    /// A control symbol (`<bos>`, `<eos>`, `<start_of_turn>`...): never produced from plain text.
    Control = 3,
    /// A user-defined symbol: always matched as a whole where it appears in the text.
    UserDefined = 4,
    /// A piece that exists in the vocabulary but is never produced.
    Unused = 5,
    /// A byte-fallback piece `<0xXX>`.
    Byte = 6,
}

impl TryFrom<i32> for PieceType {
    type Error = i32;
    fn try_from(v: i32) -> Result<Self, i32> {
        Ok(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            other => return Err(other),
        })
    }
}

impl PieceType {
    /// The SentencePiece / GGUF number of this type.
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// One vocabulary entry of a `ModelProto`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePiece {
    /// The piece text (spaces appear as `▁`, U+2581).
    pub piece: String,
    /// The piece's score (log probability for unigram, merge priority for BPE).
    pub score: f32,
    /// The piece's type.
    pub kind: PieceType,
}

/// SentencePiece's training algorithm (`TrainerSpec.model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// Unigram language model (SentencePiece's default).
    Unigram = 1,
    /// Byte-pair encoding (merges ranked by score). Gemma's models are this type.
    Bpe = 2,
    /// Whitespace-delimited words.
    Word = 3,
    /// Characters.
    Char = 4,
}

/// The `TrainerSpec` fields that matter for tokenization.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSpec {
    /// The model type (default `Unigram`).
    pub model_type: ModelType,
    /// The vocabulary size the model was trained for (default 8000).
    pub vocab_size: i32,
    /// Unknown characters become `<0xXX>` byte pieces (default false).
    pub byte_fallback: bool,
    /// Id of `<unk>` (default 0).
    pub unk_id: i32,
    /// Id of the beginning-of-sequence token, or -1 (default 1).
    pub bos_id: i32,
    /// Id of the end-of-sequence token, or -1 (default 2).
    pub eos_id: i32,
    /// Id of the padding token, or -1 (default -1).
    pub pad_id: i32,
    /// Whitespace is attached to the end of pieces instead of the start (default false).
    pub treat_whitespace_as_suffix: bool,
    /// Digits are split into single pieces (default false).
    pub split_digits: bool,
    /// Pieces made only of whitespace are allowed (default false).
    pub allow_whitespace_only_pieces: bool,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: ModelType::Unigram,
            vocab_size: 8000,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            treat_whitespace_as_suffix: false,
            split_digits: false,
            allow_whitespace_only_pieces: false,
        }
    }
}

/// The `NormalizerSpec` fields that matter for tokenization.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizerSpec {
    /// Normalization rule name (`"identity"`, `"nmt_nfkc"`...; default empty).
    pub name: String,
    /// Length of the precompiled character map (0 = no map, i.e. identity normalization).
    pub precompiled_charsmap_len: usize,
    /// A `▁` is put in front of the text (default true; false for Gemma).
    pub add_dummy_prefix: bool,
    /// Leading, trailing and repeated spaces are removed (default true; false for Gemma).
    pub remove_extra_whitespaces: bool,
    /// Spaces become `▁` (default true).
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        NormalizerSpec {
            name: String::new(),
            precompiled_charsmap_len: 0,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// The decoded parts of a SentencePiece `ModelProto`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelProto {
    /// The vocabulary, in id order.
    pub pieces: Vec<SentencePiece>,
    /// Training parameters that affect tokenization.
    pub trainer_spec: TrainerSpec,
    /// Normalization parameters.
    pub normalizer_spec: NormalizerSpec,
}

/// Reads a `tokenizer.model` file's bytes.
///
/// # Errors
/// [`TokenizerError::MalformedProto`] for bytes that are not a valid protobuf (truncated varints or
/// fields, bad UTF-8 in a piece, unsupported wire types); [`TokenizerError::UnsupportedValue`] for a
/// piece type or model type SentencePiece does not define.
pub fn parse_model_proto(bytes: &[u8]) -> Result<ModelProto, TokenizerError> {
    let raw = parse_raw(bytes)?;
    Ok(ModelProto {
        pieces: raw
            .pieces
            .into_iter()
            .map(|(piece, score, kind)| SentencePiece {
                piece: piece.to_owned(),
                score,
                kind,
            })
            .collect(),
        trainer_spec: raw.trainer_spec,
        normalizer_spec: raw.normalizer_spec,
    })
}

/// A `ModelProto` whose piece texts borrow from the file bytes (no allocation per piece).
pub(crate) struct RawModel<'a> {
    pub pieces: Vec<(&'a str, f32, PieceType)>,
    pub trainer_spec: TrainerSpec,
    pub normalizer_spec: NormalizerSpec,
}

pub(crate) fn parse_raw(bytes: &[u8]) -> Result<RawModel<'_>, TokenizerError> {
    let mut model = RawModel {
        pieces: Vec::new(),
        trainer_spec: TrainerSpec::default(),
        normalizer_spec: NormalizerSpec::default(),
    };
    let mut r = Reader::new(bytes, 0);
    let mut reserved = false;
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                let (sub, base) = r.len_delimited()?;
                if !reserved {
                    // Estimate the piece count from the first piece's size, bounded by the bytes.
                    let est = (bytes.len() / (sub.len() + 2).max(8)).min(1 << 22);
                    model.pieces.reserve(est);
                    reserved = true;
                }
                model.pieces.push(parse_piece(sub, base)?);
            }
            (2, WIRE_LEN) => {
                let (sub, base) = r.len_delimited()?;
                parse_trainer_spec(sub, base, &mut model.trainer_spec)?;
            }
            (3, WIRE_LEN) => {
                let (sub, base) = r.len_delimited()?;
                parse_normalizer_spec(sub, base, &mut model.normalizer_spec)?;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(model)
}

fn parse_piece(bytes: &[u8], base: usize) -> Result<(&str, f32, PieceType), TokenizerError> {
    let mut r = Reader::new(bytes, base);
    let mut piece = "";
    let mut score = 0.0f32;
    let mut kind = PieceType::Normal;
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                let at = r.offset();
                let (s, _) = r.len_delimited()?;
                piece = std::str::from_utf8(s).map_err(|_| TokenizerError::MalformedProto {
                    offset: at,
                    what: "piece is not valid UTF-8",
                })?;
            }
            (2, WIRE_I32) => score = f32::from_le_bytes(r.fixed32()?),
            (3, WIRE_VARINT) => {
                let v = r.varint()? as i64;
                kind = i32::try_from(v)
                    .ok()
                    .and_then(|v| PieceType::try_from(v).ok())
                    .ok_or(TokenizerError::UnsupportedValue {
                        field: "SentencePiece.type",
                        value: v,
                    })?;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((piece, score, kind))
}

fn parse_trainer_spec(
    bytes: &[u8],
    base: usize,
    spec: &mut TrainerSpec,
) -> Result<(), TokenizerError> {
    let mut r = Reader::new(bytes, base);
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (3, WIRE_VARINT) => {
                let v = r.varint()? as i64;
                spec.model_type = match v {
                    1 => ModelType::Unigram,
                    2 => ModelType::Bpe,
                    3 => ModelType::Word,
                    4 => ModelType::Char,
                    _ => {
                        return Err(TokenizerError::UnsupportedValue {
                            field: "TrainerSpec.model_type",
                            value: v,
                        })
                    }
                };
            }
            (4, WIRE_VARINT) => spec.vocab_size = r.varint()? as i32,
            (24, WIRE_VARINT) => spec.treat_whitespace_as_suffix = r.varint()? != 0,
            (25, WIRE_VARINT) => spec.split_digits = r.varint()? != 0,
            (26, WIRE_VARINT) => spec.allow_whitespace_only_pieces = r.varint()? != 0,
            (35, WIRE_VARINT) => spec.byte_fallback = r.varint()? != 0,
            // int32 fields: negative values are sign-extended to 64 bits on the wire.
            (40, WIRE_VARINT) => spec.unk_id = r.varint()? as i32,
            (41, WIRE_VARINT) => spec.bos_id = r.varint()? as i32,
            (42, WIRE_VARINT) => spec.eos_id = r.varint()? as i32,
            (43, WIRE_VARINT) => spec.pad_id = r.varint()? as i32,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(())
}

fn parse_normalizer_spec(
    bytes: &[u8],
    base: usize,
    spec: &mut NormalizerSpec,
) -> Result<(), TokenizerError> {
    let mut r = Reader::new(bytes, base);
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                let (s, _) = r.len_delimited()?;
                spec.name = String::from_utf8_lossy(s).into_owned();
            }
            (2, WIRE_LEN) => spec.precompiled_charsmap_len = r.len_delimited()?.0.len(),
            (3, WIRE_VARINT) => spec.add_dummy_prefix = r.varint()? != 0,
            (4, WIRE_VARINT) => spec.remove_extra_whitespaces = r.varint()? != 0,
            (5, WIRE_VARINT) => spec.escape_whitespaces = r.varint()? != 0,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(())
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// A cursor over one protobuf message.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` in the whole file, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            base,
        }
    }

    fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn err(&self, what: &'static str) -> TokenizerError {
        TokenizerError::MalformedProto {
            offset: self.offset(),
            what,
        }
    }

    fn varint(&mut self) -> Result<u64, TokenizerError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    fn tag(&mut self) -> Result<Option<(u32, u8)>, TokenizerError> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let at = self.pos;
        let t = self.varint()?;
        let field = t >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            self.pos = at;
            return Err(self.err("invalid field number"));
        }
        Ok(Some((field as u32, (t & 7) as u8)))
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], TokenizerError> {
        let rest = self.bytes.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= rest => {
                let s = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(self.err(what)),
        }
    }

    /// A length-delimited field's bytes and their offset in the file.
    fn len_delimited(&mut self) -> Result<(&'a [u8], usize), TokenizerError> {
        let n = self.varint()?;
        let base = self.offset();
        let s = self.take(n, "length-delimited field runs past the end")?;
        Ok((s, base))
    }

    fn fixed32(&mut self) -> Result<[u8; 4], TokenizerError> {
        let s = self.take(4, "truncated 32-bit field")?;
        let mut a = [0u8; 4];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn skip(&mut self, wire: u8) -> Result<(), TokenizerError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_I64 => self.take(8, "truncated 64-bit field").map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_I32 => self.take(4, "truncated 32-bit field").map(drop),
            _ => Err(self.err("unsupported wire type (groups or invalid)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece_bytes(piece: &str, score: f32, kind: Option<u8>) -> Vec<u8> {
        let mut p = vec![0x0a, piece.len() as u8];
        p.extend_from_slice(piece.as_bytes());
        p.push(0x15);
        p.extend_from_slice(&score.to_le_bytes());
        if let Some(k) = kind {
            p.extend_from_slice(&[0x18, k]);
        }
        let mut out = vec![0x0a, p.len() as u8];
        out.extend(p);
        out
    }

    #[test]
    fn parses_hand_written_model() {
        let mut b = piece_bytes("<unk>", 0.0, Some(2));
        b.extend(piece_bytes("▁a", -1.5, None));
        b.extend(piece_bytes("<0x41>", 0.0, Some(6)));
        // trainer_spec: model_type=2, byte_fallback=1 (field 35 -> tag 0x118 = [0x98, 0x02]), bos_id=-1
        let mut ts = vec![0x18, 0x02, 0x98, 0x02, 0x01];
        ts.extend_from_slice(&[0xc8, 0x02]); // field 41, varint
        ts.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        b.push(0x12);
        b.push(ts.len() as u8);
        b.extend(ts);
        // normalizer_spec: add_dummy_prefix=0
        b.extend_from_slice(&[0x1a, 0x02, 0x18, 0x00]);
        // An unknown fixed64 field 9 is skipped.
        b.extend_from_slice(&[0x49, 1, 2, 3, 4, 5, 6, 7, 8]);
        let m = parse_model_proto(&b).unwrap();
        assert_eq!(m.pieces.len(), 3);
        assert_eq!(m.pieces[0].kind, PieceType::Unknown);
        assert_eq!(m.pieces[1].piece, "▁a");
        assert_eq!(m.pieces[1].score, -1.5);
        assert_eq!(m.pieces[1].kind, PieceType::Normal);
        assert_eq!(m.pieces[2].kind, PieceType::Byte);
        assert_eq!(m.trainer_spec.model_type, ModelType::Bpe);
        assert!(m.trainer_spec.byte_fallback);
        assert_eq!(m.trainer_spec.bos_id, -1);
        assert_eq!(m.trainer_spec.eos_id, 2);
        assert!(!m.normalizer_spec.add_dummy_prefix);
        assert!(m.normalizer_spec.remove_extra_whitespaces);
    }

    #[test]
    fn rejects_truncated_length() {
        let err = parse_model_proto(&[0x0a, 0x05, 0x0a]).unwrap_err();
        assert!(
            matches!(err, TokenizerError::MalformedProto { offset: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn rejects_truncated_varint() {
        assert!(matches!(
            parse_model_proto(&[0x0a, 0x80]),
            Err(TokenizerError::MalformedProto { .. })
        ));
    }

    #[test]
    fn rejects_overlong_varint() {
        assert!(matches!(
            parse_model_proto(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(TokenizerError::MalformedProto { .. })
        ));
    }

    #[test]
    fn rejects_group_wire_type() {
        assert!(matches!(
            parse_model_proto(&[0x0b]),
            Err(TokenizerError::MalformedProto { .. })
        ));
    }

    #[test]
    fn rejects_field_zero() {
        assert!(matches!(
            parse_model_proto(&[0x02, 0x00]),
            Err(TokenizerError::MalformedProto { .. })
        ));
    }

    #[test]
    fn rejects_bad_utf8_piece() {
        let b = [0x0a, 0x03, 0x0a, 0x01, 0xff];
        assert!(matches!(
            parse_model_proto(&b),
            Err(TokenizerError::MalformedProto { .. })
        ));
    }

    #[test]
    fn rejects_unknown_piece_type() {
        let b = piece_bytes("x", 0.0, Some(9));
        assert!(matches!(
            parse_model_proto(&b),
            Err(TokenizerError::UnsupportedValue { value: 9, .. })
        ));
    }

    #[test]
    fn rejects_truncated_score() {
        let b = [0x0a, 0x03, 0x15, 0x00, 0x00];
        assert!(matches!(
            parse_model_proto(&b),
            Err(TokenizerError::MalformedProto { .. })
        ));
    }

    #[test]
    fn empty_input_is_empty_model() {
        let m = parse_model_proto(&[]).unwrap();
        assert!(m.pieces.is_empty());
        assert_eq!(m.trainer_spec, TrainerSpec::default());
    }
}
