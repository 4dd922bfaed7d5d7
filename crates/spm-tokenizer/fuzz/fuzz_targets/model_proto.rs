//! Any bytes as a SentencePiece `tokenizer.model`: a tokenizer or a typed error, never a panic;
//! a tokenizer that is built encodes and decodes a short text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spm_tokenizer::proto::parse_model_proto(data);
    if let Ok(t) = spm_tokenizer::Tokenizer::from_model_proto(data) {
        let ids = t.encode("Hello wörld <bos> 日本");
        let _ = t.decode(&ids);
    }
});
