//! Word-shape features. A model trained from scratch on a few hundred documents sees most PHI
//! strings once or never; their *form* (`Xxxx`, `dd/dd/dddd`, `X.X.`) is what generalises. Each
//! word's shape is hashed into a bucket whose embedding is added to all its sub-tokens' inputs.

/// `Martínez` → `Xx`, `12/03/2017` → `dd/dd/dd`, `nhc` → `xx`: upper → `X`, lower → `x`,
/// digit → `d`, other characters kept; runs longer than two are cut to two. The word's length
/// (capped) is part of the key, so `28` and `280595` differ.
pub fn shape(word: &str) -> String {
    let mut out = String::new();
    let (mut last, mut run) = ('\0', 0);
    for c in word.chars() {
        let m = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_numeric() {
            'd'
        } else {
            c
        };
        if m == last {
            run += 1;
        } else {
            last = m;
            run = 1;
        }
        if run <= 2 {
            out.push(m);
        }
    }
    out
}

/// The bucket (`0..buckets`) of a word's shape and length; FNV-1a so ids are stable across
/// runs and platforms.
pub fn shape_id(word: &str, buckets: usize) -> u32 {
    let len = word.chars().count().min(12) as u8;
    let mut h: u64 = 0xcbf29ce484222325;
    for b in shape(word).bytes().chain([0xff, len]) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % buckets.max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(shape("Martínez"), "Xxx");
        assert_eq!(shape("12/03/2017"), "dd/dd/dd");
        assert_eq!(shape("NºCol"), "XxXxx");
        assert_ne!(shape_id("28", 1024), shape_id("280595", 1024));
        assert!(shape_id("abc", 7) < 7);
    }
}
