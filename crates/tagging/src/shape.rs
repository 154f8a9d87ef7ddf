//! Word shapes and a stable hash: a tagger trained on a few hundred documents sees most PHI
//! strings once or never; their *form* (`Xxxx`, `dd/dd/dddd`, `X.X.`) is what generalises.

/// The class of a character in a shape: upper → `X`, lower → `x`, digit → `d`, others kept.
pub fn shape_char(c: char) -> char {
    if c.is_uppercase() {
        'X'
    } else if c.is_lowercase() {
        'x'
    } else if c.is_numeric() {
        'd'
    } else {
        c
    }
}

/// The shape with runs of one class cut to `max_run`: `Martínez` → `Xxx` at 2, `Xx` at 1;
/// `12/03/2017` → `dd/dd/dd` at 2.
pub fn run_shape(w: &str, max_run: usize) -> String {
    let mut out = String::new();
    let (mut last, mut run) = ('\0', 0);
    for c in w.chars() {
        let k = shape_char(c);
        run = if k == last { run + 1 } else { 1 };
        last = k;
        if run <= max_run {
            out.push(k);
        }
    }
    out
}

/// FNV-1a over bytes: stable across runs and platforms, so hashed features and buckets saved
/// in a model mean the same at load.
pub fn fnv_bytes(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a over parts, each followed by a `0xff` separator (no UTF-8 string holds that byte, so
/// `["ab", "c"]` and `["a", "bc"]` differ).
pub fn fnv(parts: &[&str]) -> u64 {
    fnv_bytes(parts.iter().flat_map(|p| p.bytes().chain(std::iter::once(0xff))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(run_shape("Martínez", 2), "Xxx");
        assert_eq!(run_shape("Martínez", 1), "Xx");
        assert_eq!(run_shape("12/03/2017", 2), "dd/dd/dd");
        assert_eq!(run_shape("X.X.", 2), "X.X.");
        assert_ne!(fnv(&["ab", "c"]), fnv(&["a", "bc"]));
        assert_eq!(fnv(&["a"]), fnv_bytes([b'a', 0xff]));
    }
}
