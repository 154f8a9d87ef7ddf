//! CRFsuite-style token features, hashed to u64 (FNV-1a: stable across runs and platforms).

use corpus::Token;

fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `Xxxx` → `Xx`, `12/03/2017` → `d/d/d`: the shape with runs collapsed.
fn short_shape(w: &str) -> String {
    let mut out = String::new();
    for c in w.chars() {
        let k = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_numeric() {
            'd'
        } else {
            c
        };
        if !out.ends_with(k) {
            out.push(k);
        }
    }
    out
}

/// The full shape, capped at 8 characters.
fn shape(w: &str) -> String {
    w.chars()
        .take(8)
        .map(|c| if c.is_uppercase() { 'X' } else if c.is_lowercase() { 'x' } else if c.is_numeric() { 'd' } else { c })
        .collect()
}

/// Features of every token of `text`.
pub fn token_features(text: &str, tokens: &[Token]) -> Vec<Vec<u64>> {
    let chars: Vec<char> = text.chars().collect();
    let words: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let shapes: Vec<String> = words.iter().map(|w| short_shape(w)).collect();
    // Whether a line break precedes the token (header fields start lines).
    let line_start: Vec<bool> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| i == 0 || chars[tokens[i - 1].end..t.start].contains(&'\n'))
        .collect();
    fn get(v: &[String], i: isize) -> &str {
        if i < 0 {
            "<s>"
        } else {
            v.get(i as usize).map_or("</s>", |s| s.as_str())
        }
    }
    (0..tokens.len())
        .map(|i| {
            let w = &words[i];
            let l = &lower[i];
            let ii = i as isize;
            let cs: Vec<char> = w.chars().collect();
            let mut f = Vec::with_capacity(40);
            f.push(fnv(&["bias"]));
            f.push(fnv(&["w", w]));
            f.push(fnv(&["l", l]));
            f.push(fnv(&["shape", &shape(w)]));
            f.push(fnv(&["sshape", &shapes[i]]));
            for k in 1..=4.min(cs.len()) {
                let p: String = cs[..k].iter().collect();
                let s: String = cs[cs.len() - k..].iter().collect();
                f.push(fnv(&["pre", &p]));
                f.push(fnv(&["suf", &s]));
            }
            f.push(fnv(&["len", &cs.len().min(12).to_string()]));
            if line_start[i] {
                f.push(fnv(&["line_start"]));
            }
            for d in [-2isize, -1, 1, 2] {
                let ds = d.to_string();
                f.push(fnv(&["l", &ds, get(&lower, ii + d)]));
                f.push(fnv(&["sshape", &ds, get(&shapes, ii + d)]));
            }
            f.push(fnv(&["l-1|l", get(&lower, ii - 1), l]));
            f.push(fnv(&["l|l+1", l, get(&lower, ii + 1)]));
            f.push(fnv(&["l-2|l-1", get(&lower, ii - 2), get(&lower, ii - 1)]));
            f.push(fnv(&["l+1|l+2", get(&lower, ii + 1), get(&lower, ii + 2)]));
            f.push(fnv(&["sh-1|sh|sh+1", get(&shapes, ii - 1), &shapes[i], get(&shapes, ii + 1)]));
            // The header field this token belongs to: the first word of its line.
            let mut j = i;
            while j > 0 && !line_start[j] {
                j -= 1;
            }
            if j != i {
                f.push(fnv(&["line_head", &lower[j]]));
            }
            // The nearest field name before it on its line (the word before a ':'): several
            // fields share a line ("Nombre: … Apellidos: … NHC: …").
            if let Some(k) = (j..i).rev().find(|&k| k + 1 < i && words[k + 1] == ":") {
                f.push(fnv(&["key", &lower[k]]));
            }
            for d in [-3isize, 3] {
                f.push(fnv(&["l", &d.to_string(), get(&lower, ii + d)]));
            }
            f.push(fnv(&["l-1|l+1", get(&lower, ii - 1), get(&lower, ii + 1)]));
            // Position in a run of capitalised words (multi-word names of hospitals, institutions).
            let cap = |k: usize| words[k].chars().next().is_some_and(|c| c.is_uppercase());
            if cap(i) {
                let before = (0..i).rev().take_while(|&k| cap(k) || lower[k] == "de" || lower[k] == "del" || lower[k] == "la").count();
                let after = (i + 1..words.len()).take_while(|&k| cap(k) || lower[k] == "de" || lower[k] == "del" || lower[k] == "la").count();
                f.push(fnv(&["caprun", &before.min(3).to_string(), &after.min(3).to_string()]));
                // The first word of the run (e.g. "hospital", "centro", "servicio").
                let first = i - before;
                f.push(fnv(&["caprun_head", &lower[first]]));
            }
            f
        })
        .collect()
}
