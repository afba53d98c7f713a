//! Ids and randomness. Ids are time-ordered i64s (milliseconds since 2024 in the high bits, random
//! low bits, strictly increasing within a process) so they sort by creation and never collide in
//! one process; randomness is injectable so tests can be deterministic.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rand::{RngCore, SeedableRng};

const EPOCH_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
static LAST_ID: AtomicI64 = AtomicI64::new(0);

/// A source of random bytes: the OS generator, or a seeded one in tests.
#[derive(Clone, Default)]
pub struct Rng(Option<Arc<Mutex<rand::rngs::StdRng>>>);

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Rng(seeded)"
        } else {
            "Rng(os)"
        })
    }
}

impl Rng {
    /// The operating system's CSPRNG.
    pub fn os() -> Self {
        Rng(None)
    }
    /// A deterministic generator, for tests only.
    pub fn seeded(seed: u64) -> Self {
        Rng(Some(Arc::new(Mutex::new(
            rand::rngs::StdRng::seed_from_u64(seed),
        ))))
    }
    /// Fill `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) {
        match &self.0 {
            None => rand::rngs::OsRng.fill_bytes(buf),
            Some(m) => match m.lock() {
                Ok(mut g) => g.fill_bytes(buf),
                Err(p) => p.into_inner().fill_bytes(buf),
            },
        }
    }
    /// A random u64.
    pub fn u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
    /// A URL-safe token carrying `bytes` random bytes (32 bytes = 256 bits by default callers).
    pub fn token(&self, bytes: usize) -> String {
        let mut b = vec![0u8; bytes];
        self.fill(&mut b);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }
}

/// A new id for something created at `now_ms`.
pub fn new_id(now_ms: i64, rng: &Rng) -> i64 {
    let candidate = ((now_ms - EPOCH_MS).max(0) << 22) | (rng.u64() & 0x3f_ffff) as i64;
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let next = if candidate > last {
            candidate
        } else {
            last + 1
        };
        match LAST_ID.compare_exchange_weak(last, next, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// SHA-256 of a token, hex encoded: how tokens are stored.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_even_within_one_millisecond() {
        let rng = Rng::seeded(7);
        let ids: Vec<i64> = (0..10_000)
            .map(|_| new_id(1_800_000_000_000, &rng))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|&i| i > 0));
    }

    #[test]
    fn tokens_carry_the_requested_entropy() {
        let t = Rng::os().token(32);
        assert_eq!(t.len(), 43);
        assert_ne!(t, Rng::os().token(32));
    }
}
