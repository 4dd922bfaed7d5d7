//! Arbitrary bytes that parse as GGUF are written again with `GgufWriter` (every key, value,
//! tensor and its data, in order): the writer accepts what the reader accepted, and the new file
//! parses to the same metadata, tensor descriptions and tensor bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(f) = gguf::Gguf::from_bytes(data) else {
        return;
    };
    let mut w = gguf::GgufWriter::with_version(Vec::new(), f.version()).expect("version");
    for (k, v) in f.metadata() {
        w.add(k, v.to_owned_value()).expect("a parsed key is writable");
    }
    for t in f.tensors() {
        w.add_tensor(t.name.clone(), t.ggml_type, &t.ne)
            .expect("a parsed tensor is writable");
    }
    for t in f.tensors() {
        w.write_tensor_data(&t.name, f.tensor_bytes(t))
            .expect("tensor data");
    }
    let bytes = w.finish().expect("finish");
    let g = gguf::Gguf::from_bytes(bytes.as_slice()).expect("the written file parses");
    let a: Vec<_> = f.metadata().map(|(k, v)| (k.to_owned(), v.to_owned_value())).collect();
    let b: Vec<_> = g.metadata().map(|(k, v)| (k.to_owned(), v.to_owned_value())).collect();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(f.tensors().len(), g.tensors().len());
    for (x, y) in f.tensors().iter().zip(g.tensors()) {
        assert_eq!((&x.name, x.ggml_type, &x.ne), (&y.name, y.ggml_type, &y.ne));
        assert_eq!(f.tensor_bytes(x), g.tensor_bytes(y));
    }
});
