//! A Unicode-aware word tokenizer with character offsets.
//!
//! Rules, in order, at each non-space position:
//! 1. URLs (`http://`, `https://`, `www.`) and e-mail addresses stay whole.
//! 2. Numbers stay whole across single inner separators between digits (`12/03/2017`, `10:30`,
//!    `3,5`, `28-0123`), so dates, times, decimals and dashed IDs are one token.
//! 3. Letter runs (letters, combining marks, digits, `º`/`ª`) form words, cut where a lower-case
//!    letter meets an upper-case one (`MartínezNºCol` → `Martínez` `Nº` `Col`) or letters meet
//!    digits (`nhc280595` → `nhc` `280595`): PHI is glued to labels that way in real notes.
//! 4. Any other character is a token of its own; whitespace (and a BOM) separates tokens and is
//!    never part of one.
//!
//! The aim is that every PHI span of a corpus starts and ends on token boundaries (see
//! `synthdeid stats`), because a tagger can only predict spans made of whole tokens.

use serde::{Deserialize, Serialize};

/// A word token: `[start, end)` in characters of the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Tokenize `text`; offsets are in characters.
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    tokenize_chars(&chars)
}

/// Tokenize an already decoded text (offsets are indices into `chars`).
pub fn tokenize_chars(chars: &[char]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(chars.len() / 5 + 1);
    let n = chars.len();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        // A BOM (zero-width no-break space) separates like whitespace and is never part of a word.
        if c.is_whitespace() || c == '\u{feff}' {
            i += 1;
            continue;
        }
        let end = url_at(chars, i)
            .or_else(|| email_at(chars, i))
            .unwrap_or_else(|| {
                if c.is_ascii_digit() || (c.is_numeric() && c.is_alphanumeric() && !c.is_alphabetic()) {
                    number_end(chars, i)
                } else if is_word_char(c) {
                    word_end(chars, i)
                } else {
                    i + 1
                }
            });
        tokens.push(Token { start: i, end });
        i = end;
    }
    tokens
}

fn is_digit(c: char) -> bool {
    c.is_numeric() && !c.is_alphabetic()
}

/// Letters, combining marks, the ordinal indicators; digits are handled as their own class.
fn is_word_char(c: char) -> bool {
    c.is_alphabetic() || is_mark(c)
}

fn is_mark(c: char) -> bool {
    // Combining diacritical marks (decomposed accents) belong to the letter before them.
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn number_end(chars: &[char], start: usize) -> usize {
    let n = chars.len();
    let mut i = start;
    while i < n && is_digit(chars[i]) {
        i += 1;
    }
    // Join `digit SEP digit` repeatedly: dates, times, decimals, dashed IDs.
    while i + 1 < n && matches!(chars[i], '/' | '.' | '-' | ':' | ',') && is_digit(chars[i + 1]) {
        i += 1;
        while i < n && is_digit(chars[i]) {
            i += 1;
        }
    }
    // Ordinals written with the indicator: 2º, 1ª, 3er is left split.
    if i < n && matches!(chars[i], 'º' | 'ª' | '°') {
        i += 1;
    }
    i
}

fn word_end(chars: &[char], start: usize) -> usize {
    let n = chars.len();
    let mut i = start + 1;
    while i < n {
        let c = chars[i];
        if !is_word_char(c) {
            break;
        }
        // lower → Upper inside a run: two words glued together (`MartínezNº`).
        let prev = prev_letter(chars, start, i);
        if c.is_uppercase() && prev.is_some_and(|p| p.is_lowercase()) {
            break;
        }
        // UPPER run → Capitalised word: `DRAlberto` → `DR` `Alberto` (needs two capitals before).
        if c.is_uppercase()
            && i >= start + 2
            && prev.is_some_and(|p| p.is_uppercase())
            && chars[..i].iter().rev().nth(1).is_some_and(|p| p.is_uppercase())
            && chars.get(i + 1).is_some_and(|n| n.is_lowercase())
        {
            break;
        }
        i += 1;
    }
    i
}

fn prev_letter(chars: &[char], start: usize, i: usize) -> Option<char> {
    chars[start..i].iter().rev().find(|c| !is_mark(**c)).copied()
}

fn starts_with_ci(chars: &[char], at: usize, pat: &str) -> bool {
    let mut k = at;
    for p in pat.chars() {
        match chars.get(k) {
            Some(c) if c.to_ascii_lowercase() == p => k += 1,
            _ => return false,
        }
    }
    true
}

/// A URL runs to the next whitespace, minus trailing sentence punctuation.
fn url_at(chars: &[char], at: usize) -> Option<usize> {
    if at > 0 && (chars[at - 1].is_alphanumeric()) {
        return None;
    }
    if !(starts_with_ci(chars, at, "http://") || starts_with_ci(chars, at, "https://") || starts_with_ci(chars, at, "www.")) {
        return None;
    }
    let mut end = at;
    while end < chars.len() && !chars[end].is_whitespace() {
        end += 1;
    }
    while end > at && matches!(chars[end - 1], '.' | ',' | ';' | ':' | ')' | ']' | '"' | '\'' | '!' | '?') {
        end -= 1;
    }
    Some(end)
}

fn is_email_local(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain(c: char) -> bool {
    c.is_alphanumeric() || c == '-'
}

/// `local@domain.tld`, where the local part starts here.
fn email_at(chars: &[char], at: usize) -> Option<usize> {
    let n = chars.len();
    if !chars[at].is_alphanumeric() {
        return None;
    }
    let mut i = at;
    while i < n && is_email_local(chars[i]) {
        i += 1;
    }
    if i >= n || chars[i] != '@' || i == at {
        return None;
    }
    // `E-mail-jdoe@x.es`, `E-mail.jdoe@x.es`: the field label is glued to the address; the
    // address starts after it (the label's words become tokens of their own).
    let local: String = chars[at..i].iter().collect::<String>().to_lowercase();
    for prefix in ["e-mail", "email", "mail", "correo", "e-correo"] {
        if local.len() > prefix.len() + 1
            && local.starts_with(prefix)
            && matches!(local.as_bytes()[prefix.len()], b'.' | b'-' | b':')
        {
            return None;
        }
    }
    i += 1;
    let mut labels = 0;
    loop {
        let label_start = i;
        while i < n && is_domain(chars[i]) {
            i += 1;
        }
        if i == label_start {
            return None;
        }
        labels += 1;
        if i + 1 < n && chars[i] == '.' && is_domain(chars[i + 1]) {
            i += 1;
            continue;
        }
        break;
    }
    (labels >= 2).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        tokenize(text).iter().map(|t| chars[t.start..t.end].iter().collect()).collect()
    }

    #[test]
    fn keeps_emails_dates_ids_whole() {
        assert_eq!(words("Correo: nnavcu@hotmail.com."), ["Correo", ":", "nnavcu@hotmail.com", "."]);
        assert_eq!(words("el 12/03/2017, a las 10:30"), ["el", "12/03/2017", ",", "a", "las", "10:30"]);
        assert_eq!(words("NASS: 26 63514095."), ["NASS", ":", "26", "63514095", "."]);
        assert_eq!(words("c/ del Abedul 5-7, 2º dcha"), ["c", "/", "del", "Abedul", "5-7", ",", "2º", "dcha"]);
        assert_eq!(words("ver https://example.org/a?b=1."), ["ver", "https://example.org/a?b=1", "."]);
    }

    #[test]
    fn splits_glued_words() {
        assert_eq!(words("nhc-280595"), ["nhc", "-", "280595"]);
        assert_eq!(words("Dr.Gerardo"), ["Dr", ".", "Gerardo"]);
        assert_eq!(words("MartínezNºCol"), ["Martínez", "Nº", "Col"]);
        assert_eq!(words("31008-Pamplona"), ["31008", "-", "Pamplona"]);
        assert_eq!(words("nhc280595"), ["nhc", "280595"]);
        assert_eq!(words("DRAlberto Miján"), ["DR", "Alberto", "Miján"]);
        assert_eq!(words("E-mail-jdoe@x.com"), ["E", "-", "mail", "-", "jdoe@x.com"]);
        assert_eq!(words("E-mail.jdoe@x.com"), ["E", "-", "mail", ".", "jdoe@x.com"]);
    }

    #[test]
    fn german_english_swedish_dates_ids_and_numbers_stay_whole() {
        assert_eq!(words("am 3.4.2019 bzw. 03.04.2019 um 14:30"), ["am", "3.4.2019", "bzw", ".", "03.04.2019", "um", "14:30"]);
        assert_eq!(words("z.B. 3,5 mg"), ["z", ".", "B", ".", "3,5", "mg"]);
        assert_eq!(words("Dr. med. Krüger-Hoffmann"), ["Dr", ".", "med", ".", "Krüger", "-", "Hoffmann"]);
        assert_eq!(words("pnr 19121212-1212, 121212-1212"), ["pnr", "19121212-1212", ",", "121212-1212"]);
        // The `+` of a centenarian's personnummer separates; the span still starts and ends on tokens.
        assert_eq!(words("850630+1234"), ["850630", "+", "1234"]);
        assert_eq!(words("kl. 14.30, 070-123 45 67"), ["kl", ".", "14.30", ",", "070-123", "45", "67"]);
        assert_eq!(words("Mr. O'Brien, (217) 555-0142"), ["Mr", ".", "O", "'", "Brien", ",", "(", "217", ")", "555-0142"]);
    }

    #[test]
    fn offsets_are_chars_and_the_bom_is_character_0_but_no_word() {
        let text = "\u{feff}Nombre:  Ernesto.";
        let toks = tokenize(text);
        assert_eq!(toks[0], Token { start: 1, end: 7 });
        assert_eq!(words(text), ["Nombre", ":", "Ernesto", "."]);
    }

    #[test]
    fn decomposed_accents_stay_in_word() {
        let text = "Jose\u{301} Pe\u{301}rez";
        assert_eq!(words(text), ["Jose\u{301}", "Pe\u{301}rez"]);
    }

    #[test]
    fn tokens_never_overlap_or_hold_whitespace() {
        let text = "Paciente de 70 años, 1,5 mg/kg; e-mail a.b-c@x.y.es (NHC 123-45). ¿Sí? «ok»";
        let toks = tokenize(text);
        let chars: Vec<char> = text.chars().collect();
        for w in toks.windows(2) {
            assert!(w[0].end <= w[1].start);
        }
        for t in &toks {
            assert!(t.end > t.start);
            assert!(chars[t.start..t.end].iter().all(|c| !c.is_whitespace()));
        }
    }
}
