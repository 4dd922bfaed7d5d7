//! Fast SentencePiece (unigram/BPE-by-score, byte fallback) tokenizer with exact Gemma parity.
