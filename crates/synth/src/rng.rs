//! A small deterministic PRNG (SplitMix64) and a mixer for per-person streams.

/// SplitMix64: fast, seedable, good enough for test data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

/// Mixes two words into one well-spread seed.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut r = Rng(a ^ b.wrapping_mul(0xA24B_AED4_963E_E407));
    r.next_u64() ^ Rng(b ^ 0x5851_F42D_4C95_7F2D).next_u64()
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        let mut r = Rng(seed);
        let _ = r.next_u64();
        r
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1).max(1) as u64)) as i64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Roughly normal (sum of uniforms).
    pub(crate) fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..6).map(|_| self.unit()).sum::<f64>() - 3.0;
        mean + sd * s * std::f64::consts::SQRT_2
    }

    /// One item of a non-empty slice (the first when `xs` has one item).
    pub(crate) fn pick<T: Copy>(&mut self, xs: &[T], fallback: T) -> T {
        xs.get(self.below(xs.len())).copied().unwrap_or(fallback)
    }
}
