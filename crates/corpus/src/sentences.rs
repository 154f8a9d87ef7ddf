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
    // German: titles and degrees (`Dr. med.`, `Prof. Dr. rer. nat.`), everyday abbreviations, address fields.
    "med", "dent", "habil", "rer", "nat", "vet", "phil", "dipl", "priv", "doz", "bzw", "ggf", "evtl", "vgl", "geb",
    "pat", "abt", "zi", "nr", "inkl", "str",
    // Swedish: `kl. 14.30`, `avd. 52`, `leg. läk.`, `resp.`, `jfr`, `enl.`, `tfn`, `ssk.`.
    "kl", "avd", "läk", "leg", "resp", "jfr", "enl", "tfn", "ssk",
    // English addresses and notes: `Mt.`, `Blvd.`, `Rd.`, `Ste.`, `Bldg.`, `Pt.`, `approx.`.
    "mt", "blvd", "rd", "ste", "bldg", "pt", "approx",
];

/// Month abbreviations (English, German, Swedish): a period after one is no sentence end when a number
/// follows (`Jan. 3, 2019`, `16 jan. 2020`, `Dez. 2019`).
const MONTH_ABBREVIATIONS: &[&str] =
    &["jan", "feb", "mar", "mär", "mrz", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "okt", "nov", "dec", "dez"];

/// German month names: `3. April 2019` writes the day as an ordinal, and its period ends no sentence.
const GERMAN_MONTHS: &[&str] = &[
    "januar", "jänner", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november",
    "dezember", "jan", "feb", "mär", "mrz", "apr", "jun", "jul", "aug", "sep", "sept", "okt", "nov", "dez",
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
            let next = tokens.get(i + 1);
            let next_is_number = next.is_some_and(|n| chars[n.start].is_ascii_digit());
            if letters == 0 {
                // `am 3. April 2019`: a day of one or two digits written as an ordinal before a German
                // month name (capitalised, as German writes it).
                let next_word: String = next.map(|n| chars[n.start..n.end].iter().collect()).unwrap_or_default();
                if word.len() <= 2
                    && word.chars().all(|c| c.is_ascii_digit())
                    && next_word.starts_with(char::is_uppercase)
                    && GERMAN_MONTHS.contains(&next_word.to_lowercase().as_str())
                {
                    return false;
                }
                // `59. 4º`: a number period number is an address, not a sentence end; `C/.` is an
                // abbreviation; `...en 2015. Luego` ends a sentence.
                let after_symbol = !chars[prev.start].is_alphanumeric() && !matches!(chars[prev.start], ')' | ']' | '"' | '»');
                return !(after_symbol || chars[prev.start].is_ascii_digit() && next_is_number);
            }
            let lower = word.to_lowercase();
            // `Jan. 3, 2019`; `Hauptstr. 5` (German street names cut to `-str.` before the house number).
            if next_is_number && (MONTH_ABBREVIATIONS.contains(&lower.as_str()) || (lower.ends_with("str") && letters > 3)) {
                return false;
            }
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

    #[test]
    fn german_english_swedish_abbreviations_dates_and_streets_end_no_sentence() {
        assert_eq!(
            sents("Die Aufnahme erfolgte am 3. April 2019 durch Prof. Dr. med. Hans Schäfer, z.B. wegen Fieber. Er wohnt in der Hauptstr. 5 in Köln. Danach Ruhe."),
            ["Die Aufnahme erfolgte am 3. April 2019 durch Prof. Dr. med. Hans Schäfer, z.B. wegen Fieber.", "Er wohnt in der Hauptstr. 5 in Köln.", "Danach Ruhe."]
        );
        assert_eq!(
            sents("He was seen by Dr. Patel on Jan. 3, 2019 and was discharged home. Then he left."),
            ["He was seen by Dr. Patel on Jan. 3, 2019 and was discharged home.", "Then he left."]
        );
        assert_eq!(
            sents("Patienten skrevs ut den 16 jan. 2020 kl. 14.30 från avd. 52. Hon mår bra."),
            ["Patienten skrevs ut den 16 jan. 2020 kl. 14.30 från avd. 52.", "Hon mår bra."]
        );
        // A year before a month name still ends a sentence; so does a plain number before a capital.
        assert_eq!(sents("Operiert wurde 2019. April war ruhig."), ["Operiert wurde 2019.", "April war ruhig."]);
    }
}
