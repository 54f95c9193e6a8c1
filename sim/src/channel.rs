//! Randomness and per-receiver loss models of the simulated medium.

/// SplitMix64: small, fast, and deterministic for a given seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and a stream number (one stream per receiver).
    pub fn new(seed: u64, stream: u64) -> Self {
        // Streams must start at unrelated states: SplitMix64 streams whose states differ by
        // a small multiple of the increment are shifted copies of each other, and shifted
        // copies make receivers' losses correlated.
        let mut s = Rng(stream);
        let mixed_stream = s.next_u64();
        let mut r = Rng(seed ^ mixed_stream);
        r.0 = r.next_u64();
        r
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// Loss on one receiver's link: independent (Bernoulli) or bursty (Gilbert-Elliott).
#[derive(Clone, Debug)]
pub struct LossModel {
    /// Long-run loss rate.
    pub rate: f64,
    /// Probability of entering the bad state from the good one.
    to_bad: f64,
    /// Probability of leaving the bad state (1 / mean burst length).
    to_good: f64,
    bad: bool,
}

impl LossModel {
    /// Loss `rate` in bursts of `mean_burst` packets on average (1 = independent losses).
    /// In the bad state every packet is lost; the chain's stationary loss equals `rate`.
    pub fn new(rate: f64, mean_burst: f64) -> Self {
        let rate = rate.clamp(0.0, 0.999);
        if mean_burst <= 1.0 {
            return Self {
                rate,
                to_bad: rate,
                to_good: 1.0,
                bad: false,
            };
        }
        let to_good = 1.0 / mean_burst;
        let to_bad = rate * to_good / (1.0 - rate);
        Self {
            rate,
            to_bad,
            to_good,
            bad: false,
        }
    }

    /// Whether the next packet is lost.
    pub fn lose(&mut self, rng: &mut Rng) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        if self.to_good >= 1.0 {
            return rng.chance(self.rate);
        }
        self.bad = if self.bad {
            !rng.chance(self.to_good)
        } else {
            rng.chance(self.to_bad)
        };
        self.bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(m: &mut LossModel, rng: &mut Rng, n: usize) -> (f64, f64) {
        let (mut lost, mut bursts, mut prev) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = m.lose(rng);
            lost += l as usize;
            bursts += (l && !prev) as usize;
            prev = l;
        }
        (lost as f64 / n as f64, lost as f64 / bursts.max(1) as f64)
    }

    #[test]
    fn independent_and_bursty_models_hit_their_rates() {
        let mut rng = Rng::new(1, 0);
        let (rate, burst) = measure(&mut LossModel::new(0.02, 1.0), &mut rng, 400_000);
        assert!((rate - 0.02).abs() < 0.002, "rate {rate}");
        assert!(burst < 1.1, "independent bursts {burst}");
        let (rate, burst) = measure(&mut LossModel::new(0.02, 8.0), &mut rng, 2_000_000);
        assert!((rate - 0.02).abs() < 0.003, "rate {rate}");
        assert!((burst - 8.0).abs() < 1.0, "burst {burst}");
    }

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 3);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 3);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(Rng::new(7, 3).next_u64(), Rng::new(7, 4).next_u64());
    }
}
