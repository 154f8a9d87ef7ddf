//! A sentence splitter that does not cut PHI: Spanish clinical notes are full of abbreviations
//! (`Avda.`, `Dr.`, `Dña.`, `c/`, initials), and splitting on every ". " cuts 463 MEDDOCAN spans.
//!
//! Rules: a line break ends a sentence; inside a line, `.`, `!`, `?` or `…` (with closing quotes
//! or brackets after it) ends one when whitespace follows and the next word starts with an
//! upper-case letter, a digit or opening punctuation — unless the word before the period is a
//! known abbreviation, a single letter (an initial) or an all-capitals word of up to 3 letters.

use crate::tokenize::tokenize_chars;

/// Lower-cased abbreviations that a period does not end a sentence after.
const ABBREVIATIONS: &[&str] = &[
    "dr", "dra", "drs", "sr", "sra", "srta", "sres", "d", "dña", "dª", "da", "avda", "av", "avd", "ave", "c", "cl", "pza",
    "pl", "plza", "ctra", "cra", "urb", "pje", "pº", "ps", "pso", "bº", "bo", "nº", "no", "núm", "num", "n", "tel", "telf",
    "tlf", "tfno", "fax", "prof", "profa", "hosp", "dpto", "depto", "dept", "sto", "sta", "vda", "ud", "uds", "etc", "pág",
    "pag", "art", "aprox", "excmo", "excma", "ilmo", "ilma", "hno", "hna", "gral", "cía", "cia", "s.a", "s.l", "col",
    "colegiado", "coleg", "lic", "ing", "esq", "izq", "dcha", "izda", "dcho", "pta", "ptal", "bl", "blq", "esc", "portal",
    "apdo", "aptdo", "edif", "ed", "km", "p", "pp", "vol", "cap", "fig", "tab", "mr", "mrs", "ms", "st", "jr", "vs", "e.g",
    "i.e", "cf", "cdad", "univ", "co", "avda", "hosp", "serv", "unid", "dep", "ctro", "cto", "fdo", "atte", "apto", "apt", "dto", "piso", "puerta", "et", "al", "mg", "ml", "kg", "cm", "mm", "h", "min", "seg", "aa", "ee", "uu", "ss", "cc",
];

/// Sentences of `text` as `[start, end)` character ranges, trimmed of surrounding whitespace,
/// in order and never overlapping. Whitespace-only text gives no sentences.
pub fn split_sentences(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let tokens = tokenize_chars(&chars);
    let mut out = Vec::new();
    let mut sent_start: Option<usize> = None;
    let mut sent_start_tok = 0;
    for (i, tok) in tokens.iter().enumerate() {
        if sent_start.is_none() {
            sent_start_tok = i;
        }
        let start = *sent_start.get_or_insert(tok.start);
        let next = tokens.get(i + 1);
        let line_break = next.is_some_and(|n| chars[tok.end..n.start].contains(&'\n'));
        if next.is_none() || line_break || (ends_sentence(&chars, &tokens, i) && (chars[tok.start] != '.' || has_prose(&chars, clause(&chars, &tokens[sent_start_tok..i])))) {
            out.push((start, tok.end));
            sent_start = None;
        }
    }
    out
}

/// The tokens after the last `,` `;` or `:` of a sentence so far.
fn clause<'a>(chars: &[char], tokens: &'a [crate::Token]) -> &'a [crate::Token] {
    let from = tokens
        .iter()
        .rposition(|t| t.len() == 1 && matches!(chars[t.start], ',' | ';' | ':'))
        .map_or(0, |p| p + 1);
    &tokens[from..]
}

/// Header and address fragments (`Capital Federal. Buenos Aires`, `DIAVERUM. CERER, S.A.`) are
/// made of capitalised words, numbers and short particles; a period inside them is not a
/// sentence end. A clause of prose has at least one lower-case word of four or more letters.
fn has_prose(chars: &[char], tokens: &[crate::Token]) -> bool {
    tokens.iter().any(|t| {
        let w = &chars[t.start..t.end];
        w.len() >= 4 && w[0].is_lowercase() && w.iter().all(|c| c.is_alphabetic())
    })
}

fn ends_sentence(chars: &[char], tokens: &[crate::Token], i: usize) -> bool {
    let tok = tokens[i];
    let Some(next) = tokens.get(i + 1) else { return true };
    if next.start == tok.end {
        return false; // no whitespace after it
    }
    let c = chars[tok.start];
    let closing = |c: char| matches!(c, ')' | ']' | '"' | '\'' | '»' | '”' | '’');
    if closing(c) && tok.len() == 1 {
        // `.)` or `."`: the sentence ends after the closing mark if a period precedes it.
        return i > 0 && tokens[i - 1].end == tok.start && is_terminal(chars, tokens, i - 1) && opens_sentence(chars, *next);
    }
    is_terminal(chars, tokens, i) && opens_sentence(chars, *next)
}

/// A `.`, `!`, `?` or `…` token that is not the period of an abbreviation.
fn is_terminal(chars: &[char], tokens: &[crate::Token], i: usize) -> bool {
    let tok = tokens[i];
    if tok.len() != 1 {
        return false;
    }
    match chars[tok.start] {
        '!' | '?' | '…' => true,
        '.' => {
            if i == 0 || tokens[i - 1].end != tok.start {
                return true; // a lone period
            }
            let prev = tokens[i - 1];
            let word: String = chars[prev.start..prev.end].iter().collect();
            let letters = word.chars().filter(|c| c.is_alphabetic()).count();
            if letters == 0 {
                // `59. 4º`: a number period number is an address, not a sentence end; `C/.` is an
                // abbreviation; `...en 2015. Luego` ends a sentence.
                let next_is_number = tokens.get(i + 1).is_some_and(|n| chars[n.start].is_ascii_digit());
                let after_symbol = !chars[prev.start].is_alphanumeric() && !matches!(chars[prev.start], ')' | ']' | '"' | '»');
                return !(after_symbol || chars[prev.start].is_ascii_digit() && next_is_number);
            }
            let lower = word.to_lowercase();
            let abbrev = ABBREVIATIONS.contains(&lower.as_str())
                || letters == 1
                || (word.chars().all(|c| c.is_uppercase()) && letters <= 3)
                // `S.A.`, `EE.UU.`: a period glued to an earlier period-word.
                || (i >= 2 && chars[tokens[i - 2].start] == '.' && tokens[i - 2].end == prev.start);
            !abbrev
        }
        _ => false,
    }
}

fn opens_sentence(chars: &[char], next: crate::Token) -> bool {
    let c = chars[next.start];
    c.is_uppercase() || c.is_ascii_digit() || matches!(c, '¿' | '¡' | '(' | '"' | '«' | '“' | '-' | '—' | '•' | '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sents(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        split_sentences(text).into_iter().map(|(s, e)| chars[s..e].iter().collect()).collect()
    }

    #[test]
    fn splits_on_periods_and_lines_but_not_abbreviations() {
        assert_eq!(
            sents("Vive solo en Avda. Libertad 3. Acude el Dr. Pérez con fiebre.\nNHC: 12.  Fin del caso! ¿Algo más? No."),
            ["Vive solo en Avda. Libertad 3.", "Acude el Dr. Pérez con fiebre.", "NHC: 12.  Fin del caso!", "¿Algo más?", "No."]
        );
        assert_eq!(sents("J. García firmó ayer. Luego S.A. Madrid."), ["J. García firmó ayer.", "Luego S.A. Madrid."]);
        assert_eq!(sents("Dijo \"basta ya.\" Luego se fue."), ["Dijo \"basta ya.\"", "Luego se fue."]);
        assert!(sents("  \n ").is_empty());
        assert_eq!(sents("Domicilio: Calle Mayor 35. 1F 38750 El Paso. Capital Federal. Buenos Aires.\nVive con su madre. Trabaja mucho."),
            ["Domicilio: Calle Mayor 35. 1F 38750 El Paso. Capital Federal. Buenos Aires.", "Vive con su madre.", "Trabaja mucho."]);
    }
}
