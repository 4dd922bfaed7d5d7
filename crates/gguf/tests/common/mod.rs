//! Helpers shared by the integration tests: a hand-written GGUF byte builder and an aligned
//! byte buffer.
#![allow(dead_code)] // each test binary uses a subset

/// Bytes in a `u64`-aligned buffer, so typed tensor views work (also under Miri, whose
/// allocator does not over-align `Vec<u8>`). `skip` shifts the view to make it misaligned.
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
    skip: usize,
}

impl Aligned {
    pub fn new(b: &[u8]) -> Self {
        Self::with_skip(b, 0)
    }

    /// The view starts `skip` bytes into an 8-aligned buffer.
    pub fn with_skip(b: &[u8], skip: usize) -> Self {
        let total = b.len() + skip;
        let mut words = vec![0u64; total.div_ceil(8)];
        for (i, &x) in b.iter().enumerate() {
            let j = i + skip;
            words[j / 8] |= u64::from(x) << (8 * (j % 8));
        }
        Aligned {
            words,
            len: b.len(),
            skip,
        }
    }
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &zerocopy::IntoBytes::as_bytes(self.words.as_slice())[self.skip..self.skip + self.len]
    }
}

/// Builds GGUF bytes field by field.
#[derive(Clone, Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Magic, version, tensor count, metadata count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut b = Bytes(b"GGUF".to_vec());
        b.u32(version).u64(n_tensors).u64(n_kv);
        b
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A length-prefixed string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    /// A `u32` metadata entry.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    /// A string metadata entry.
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.str(key).u32(8).str(v)
    }
    /// A tensor info.
    pub fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Zero padding up to a multiple of `align`.
    pub fn pad(&mut self, align: usize) -> &mut Self {
        while self.0.len() % align != 0 {
            self.0.push(0);
        }
        self
    }
    pub fn build(&self) -> Vec<u8> {
        self.0.clone()
    }
}
