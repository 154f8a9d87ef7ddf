//! Format-preserving replacements: identifiers (with Spanish DNI/NIE check letters), phone numbers, postal
//! codes, and the generic letters→letters, digits→digits replacement.

use rand::Rng;

use crate::text::char_in_case_of;

/// The check-letter table of the Spanish DNI/NIF and NIE: letter = TABLE[number mod 23].
pub const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Check letter of a DNI number (or of an NIE whose X/Y/Z prefix was replaced by 0/1/2).
pub fn dni_letter(number: u32) -> char {
    DNI_LETTERS[(number % 23) as usize] as char
}

/// Whether `s` (separators allowed: space, `-`, `.`) is a Spanish DNI/NIF (8 digits + check letter) or NIE
/// (X/Y/Z + 7 digits + check letter) with a correct check letter. Used by tests and callers.
pub fn is_valid_dni_or_nie(s: &str) -> bool {
    let c: Vec<char> = s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    if c.len() != 9 || !c[8].is_ascii_uppercase() {
        return false;
    }
    let digits: String = match c[0] {
        'X' => std::iter::once('0').chain(c[1..8].iter().copied()).collect(),
        'Y' => std::iter::once('1').chain(c[1..8].iter().copied()).collect(),
        'Z' => std::iter::once('2').chain(c[1..8].iter().copied()).collect(),
        _ => c[..8].iter().collect(),
    };
    digits.chars().all(|d| d.is_ascii_digit()) && digits.parse::<u32>().map(dni_letter) == Ok(c[8])
}

const VOWELS: &[u8] = b"aeiou";
const CONSONANTS: &[u8] = b"bcdfghjlmnprstvz";
const LETTERS: &[u8] = b"ABCDEFGHJKLMNPRSTVWXYZ";

fn is_vowel(c: char) -> bool {
    matches!(crate::text::fold_char(c.to_lowercase().next().unwrap_or(c)), 'a' | 'e' | 'i' | 'o' | 'u')
}

/// A letter that carries case (not `º`/`ª`).
fn is_cased_letter(c: char) -> bool {
    crate::text::has_case(c)
}

fn random_digit(rng: &mut impl Rng, nonzero: bool) -> char {
    let lo = if nonzero { 1 } else { 0 };
    char::from(b'0' + rng.random_range(lo..10u8))
}

/// Generic format-preserving replacement: every ASCII digit → a random digit (the first digit of a run
/// stays non-zero when it was), every cased letter → a random letter of the same case (vowel for vowel,
/// consonant for consonant, so words stay pronounceable), everything else (spaces, punctuation, `º`) kept.
pub(crate) fn random_like(rng: &mut impl Rng, original: &str) -> String {
    let mut out = String::with_capacity(original.len());
    let mut prev_digit = false;
    for c in original.chars() {
        if c.is_ascii_digit() {
            out.push(random_digit(rng, !prev_digit && c != '0'));
            prev_digit = true;
            continue;
        }
        prev_digit = false;
        if is_cased_letter(c) {
            let pool = if is_vowel(c) { VOWELS } else { CONSONANTS };
            let r = pool[rng.random_range(0..pool.len())] as char;
            out.push(char_in_case_of(r, c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The canonical form of a format-preserving value: its ASCII letters and digits, letters upper-cased.
pub(crate) fn canonical_alnum(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// Writes a canonical surrogate (same length as the original's canonical form) back into the original's
/// layout: separators kept, each letter in the case of the letter it replaces.
pub(crate) fn render_alnum(original: &str, canonical_surrogate: &str) -> String {
    let mut it = canonical_surrogate.chars();
    original
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                let n = it.next().unwrap_or(c);
                char_in_case_of(n, c)
            } else {
                c
            }
        })
        .collect()
}

/// An identifier surrogate in canonical form: digits → random digits, letters → random letters, positions
/// kept. An 8-digits+letter original (DNI/NIF shape) gets a valid check letter, and an X/Y/Z+7
/// digits+letter original (NIE shape) a random X/Y/Z prefix and a valid check letter.
pub(crate) fn id_canonical(rng: &mut impl Rng, canonical: &str) -> String {
    let c: Vec<char> = canonical.chars().collect();
    let is_digits = |r: &[char]| r.iter().all(|d| d.is_ascii_digit());
    if c.len() == 9 && is_digits(&c[..8]) && c[8].is_ascii_uppercase() {
        let n: u32 = rng.random_range(0..100_000_000);
        return format!("{n:08}{}", dni_letter(n));
    }
    if c.len() == 9 && matches!(c[0], 'X' | 'Y' | 'Z') && is_digits(&c[1..8]) && c[8].is_ascii_uppercase() {
        let p: u32 = rng.random_range(0..3);
        let n: u32 = rng.random_range(0..10_000_000);
        let prefix = ['X', 'Y', 'Z'][p as usize];
        return format!("{prefix}{n:07}{}", dni_letter(p * 10_000_000 + n));
    }
    let mut out = String::with_capacity(c.len());
    for (i, ch) in c.iter().enumerate() {
        if ch.is_ascii_digit() {
            out.push(random_digit(rng, i == 0 && *ch != '0'));
        } else {
            out.push(LETTERS[rng.random_range(0..LETTERS.len())] as char);
        }
    }
    out
}

/// A phone or fax number surrogate in canonical form: the first digit (mobile / landline class, or the
/// start of a country code) is kept, every other digit is random; letters (an "ext") are kept.
pub(crate) fn phone_canonical(rng: &mut impl Rng, canonical: &str) -> String {
    let mut first = true;
    canonical
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                if std::mem::take(&mut first) {
                    c
                } else {
                    random_digit(rng, false)
                }
            } else {
                c
            }
        })
        .collect()
}

/// A postal code surrogate (digits only in canonical form; letters such as the `E-` of `E-28036` are kept
/// by [`render_alnum`] because they are copied here). A 5-digit code gets a Spanish province prefix 01–52.
pub(crate) fn postal_canonical(rng: &mut impl Rng, canonical: &str) -> String {
    let digits = canonical.chars().filter(|c| c.is_ascii_digit()).count();
    let mut new_digits: Vec<char> = if digits == 5 {
        let p: u32 = rng.random_range(1..=52);
        let rest: u32 = rng.random_range(0..1000);
        format!("{p:02}{rest:03}").chars().collect()
    } else {
        let first_nonzero = canonical.chars().find(|c| c.is_ascii_digit()).is_some_and(|c| c != '0');
        (0..digits).map(|i| random_digit(rng, i == 0 && first_nonzero)).collect()
    };
    new_digits.reverse();
    canonical.chars().map(|c| if c.is_ascii_digit() { new_digits.pop().unwrap_or(c) } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn dni_table() {
        assert_eq!(dni_letter(12345678), 'Z');
        assert!(is_valid_dni_or_nie("12345678Z"));
        assert!(is_valid_dni_or_nie("12.345.678-z"));
        assert!(!is_valid_dni_or_nie("12345678A"));
        assert!(is_valid_dni_or_nie("X1234567L"));
    }

    #[test]
    fn ids_keep_shape() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for _ in 0..200 {
            let s = id_canonical(&mut rng, "12345678Z");
            assert!(is_valid_dni_or_nie(&s), "{s}");
            let s = id_canonical(&mut rng, "Y1234567X");
            assert!(is_valid_dni_or_nie(&s), "{s}");
            let s = id_canonical(&mut rng, "AB12C3");
            assert_eq!(s.len(), 6);
            assert!(s[..2].chars().all(|c| c.is_ascii_uppercase()) && s[2..4].chars().all(|c| c.is_ascii_digit()));
        }
        assert_eq!(render_alnum("28 28-70973", "123456789"), "12 34-56789");
        assert_eq!(render_alnum("ab-1", "XY2"), "xy-2");
    }

    #[test]
    fn generic_keeps_classes() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let s = random_like(&mut rng, "Ábc 0129, 2º-Z");
        let o: Vec<char> = "Ábc 0129, 2º-Z".chars().collect();
        for (a, b) in s.chars().zip(o) {
            assert_eq!(a.is_ascii_digit(), b.is_ascii_digit());
            assert_eq!(a.is_uppercase(), b.is_uppercase());
            if !b.is_alphanumeric() || b == 'º' {
                assert_eq!(a, b);
            }
        }
        let p = postal_canonical(&mut rng, "28036");
        let prov: u32 = p[..2].parse().unwrap();
        assert!((1..=52).contains(&prov) && p.len() == 5);
    }
}
