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
    fn it_is_splitmix64_by_its_published_outputs() {
        // The first outputs of SplitMix64 from state 0 (the reference
        // implementation, splitmix64.c by Vigna; also Java's SplittableRandom).
        let mut r = Rng { state: 0 };
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn up_to_covers_zero_to_max_inclusive_evenly() {
        let mut r = Rng::for_worker(7, 1);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[usize::try_from(r.up_to(5)).unwrap()] += 1;
        }
        // 10,000 expected per value; 5 standard deviations is about 450.
        for (v, &n) in counts.iter().enumerate() {
            assert!(
                (9_500..=10_500).contains(&n),
                "value {v}: {n} of 60000 ({counts:?})"
            );
        }
        assert_eq!(r.up_to(0), 0);
    }

    #[test]
    fn workers_of_one_seed_get_unrelated_streams_and_a_seed_replays_them() {
        let stream = |seed, p| -> Vec<u64> {
            let mut r = Rng::for_worker(seed, p);
            (0..64).map(|_| r.next_u64()).collect()
        };
        assert_eq!(
            stream(42, 3),
            stream(42, 3),
            "a seed replays a worker's choices"
        );
        // No value shared between neighbouring workers' first 64 draws, nor with
        // the same worker of the next seed (a shifted copy of one stream would).
        for (a, b) in [((42, 3), (42, 4)), ((42, 3), (43, 3)), ((0, 1), (0, 2))] {
            let (x, y) = (stream(a.0, a.1), stream(b.0, b.1));
            assert!(
                x.iter().all(|v| !y.contains(v)),
                "{a:?} and {b:?} share values"
            );
        }
    }
}
