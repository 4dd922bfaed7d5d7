//! Parse arbitrary bytes as GGUF; on success read every value, array element and tensor.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = gguf::Gguf::from_bytes(data) {
        f.metadata().for_each(|(k, v)| drop((format!("{k}{v:?}"), v.as_array().map(|a| a.iter().count()))));
        f.tensors().iter().for_each(|t| drop((f.tensor_bytes(t).len(), f.dequantize(t), f.tensor_f32(t), f.tensor_q8_0(t))));
    }
});
