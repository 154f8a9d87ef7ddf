//! Every random choice of the surrogate generator comes from HMAC-SHA256 under the user's key (or a key
//! derived from a seed), so the output is reproducible with the key and not guessable without it.

use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The HMAC keyed once, with the domain tag already absorbed: each [`Keyed::mac`] clones it instead of
/// re-deriving the inner and outer key blocks (same bytes out, half the SHA-256 work per draw).
#[derive(Clone)]
pub(crate) struct Keyed {
    base: HmacSha256,
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyed(<secret>)")
    }
}

impl Keyed {
    pub(crate) fn from_key(key: &[u8]) -> Self {
        let mut base = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        base.update(b"synthdeid/deid/v1");
        Keyed { base }
    }

    /// A per-run key when the user gave none: SHA-256 of a domain tag and the seed. Reproducible from the
    /// seed, so **not secret**: use a real key for anything shared.
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"synthdeid/deid/seed-key/v1");
        h.update(seed.to_le_bytes());
        Self::from_key(&h.finalize())
    }

    /// HMAC-SHA256 of the length-prefixed parts (so `["ab","c"]` and `["a","bc"]` differ).
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.base.clone();
        for p in parts {
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    pub(crate) fn u64(&self, parts: &[&[u8]]) -> u64 {
        let b = self.mac(parts);
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    }

    /// A ChaCha20 stream seeded with the HMAC of the parts, for choices that need many numbers.
    pub(crate) fn rng(&self, parts: &[&[u8]]) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.mac(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_is_deterministic_and_key_dependent() {
        let a = Keyed::from_key(b"k1");
        let b = Keyed::from_key(b"k2");
        assert_eq!(a.mac(&[b"x", b"y"]), a.mac(&[b"x", b"y"]));
        assert_ne!(a.mac(&[b"x", b"y"]), b.mac(&[b"x", b"y"]));
        assert_ne!(a.mac(&[b"xy"]), a.mac(&[b"x", b"y"]));
        assert_ne!(Keyed::from_seed(1).mac(&[b"x"]), Keyed::from_seed(2).mac(&[b"x"]));
    }

    /// The pre-keyed state gives the bytes of a fresh HMAC (surrogates stay what they were for a key).
    #[test]
    fn prekeyed_mac_equals_a_fresh_hmac() {
        let fresh = |key: &[u8], parts: &[&[u8]]| -> [u8; 32] {
            let mut m = HmacSha256::new_from_slice(key).unwrap();
            m.update(b"synthdeid/deid/v1");
            for p in parts {
                m.update(&(p.len() as u64).to_le_bytes());
                m.update(p);
            }
            m.finalize().into_bytes().into()
        };
        let long_key = [7u8; 100];
        for key in [&b"k1"[..], &long_key[..], b""] {
            let k = Keyed::from_key(key);
            for _ in 0..2 {
                assert_eq!(k.mac(&[b"name", b"garcia", &3u32.to_le_bytes()]), fresh(key, &[b"name", b"garcia", &3u32.to_le_bytes()]));
            }
        }
    }
}
