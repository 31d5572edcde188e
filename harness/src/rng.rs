//! A tiny deterministic PRNG (SplitMix64, Steele, Lea & Flood 2014).
//!
//! Every random choice of a run (pause jitter, `{hex8}` in keys) comes from one
//! `--seed`; each worker derives its own stream from `(seed, process id)`, so a run
//! is replayed by its seed.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The stream for worker `process` of a run seeded with `seed`.
    #[must_use]
    pub fn for_worker(seed: u64, process: u64) -> Self {
        let mut rng = Self {
            state: seed ^ process.wrapping_mul(0xD1B5_4A32_D192_ED03),
        };
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        self.next_u64() % (max + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_worker_give_the_same_stream() {
        let mut a = Rng::for_worker(42, 3);
        let mut b = Rng::for_worker(42, 3);
        let mut c = Rng::for_worker(42, 4);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!((0..100).all(|_| a.up_to(10) <= 10));
    }
}
