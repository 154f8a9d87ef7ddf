//! Small text helpers: accent folding, the "loose" normal form used for consistency and forbidden-string
//! checks, case styles, and word-bounded containment.

/// Folds the accented Latin letters of Spanish, Catalan, Galician, Basque, English and Swedish text to their
/// base letter (lower case in, lower case out; other characters unchanged).
pub(crate) fn fold_char(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        'ý' | 'ÿ' => 'y',
        _ => c,
    }
}

/// A combining mark of a decomposed accent (`e` + U+0301 for `é`): the common combining blocks.
pub(crate) fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Lower case, accents folded (decomposed ones too: combining marks are dropped), runs of whitespace collapsed to one space, trimmed. Two strings with the same
/// loose form are "the same original" for consistency, and a surrogate whose loose form equals an original's
/// is rejected.
pub(crate) fn loose_norm(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if is_combining_mark(c) {
            continue;
        }
        for l in c.to_lowercase() {
            out.push(fold_char(l));
        }
    }
    out
}

/// Lower case and accent folding of one word (no whitespace handling).
pub(crate) fn fold_word(s: &str) -> String {
    s.chars().filter(|c| !is_combining_mark(*c)).flat_map(|c| c.to_lowercase()).map(fold_char).collect()
}

/// ASCII-only lower-case form for e-mail local parts and domains.
pub(crate) fn ascii_slug(s: &str) -> String {
    fold_word(s).chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// How an original string is capitalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaseStyle {
    /// Every letter lower case.
    Lower,
    /// Every letter upper case (at least two letters).
    Upper,
    /// First letter upper case, and not all upper case.
    Title,
    /// Anything else, or no letters at all.
    Mixed,
}

/// Whether a character has an upper and a lower case form (ordinal indicators `º`/`ª` are alphabetic and
/// even "lowercase" in Unicode, but have no case to keep).
pub(crate) fn has_case(c: char) -> bool {
    c.is_alphabetic() && !c.to_uppercase().eq(c.to_lowercase())
}

fn cased_letters(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().filter(|c| has_case(*c))
}

pub(crate) fn case_style(s: &str) -> CaseStyle {
    let n = cased_letters(s).count();
    if n == 0 {
        return CaseStyle::Mixed;
    }
    let upper = cased_letters(s).filter(|c| c.is_uppercase()).count();
    if upper == 0 {
        CaseStyle::Lower
    } else if upper == n && n >= 2 {
        CaseStyle::Upper
    } else if cased_letters(s).next().is_some_and(|c| c.is_uppercase()) {
        CaseStyle::Title
    } else {
        CaseStyle::Mixed
    }
}

/// Writes `canonical` (a vocabulary entry in its natural capitalisation) in `style`.
pub(crate) fn apply_case(canonical: &str, style: CaseStyle) -> String {
    match style {
        CaseStyle::Lower => canonical.to_lowercase(),
        CaseStyle::Upper => canonical.to_uppercase(),
        // "del Sureste" stays as it is: a leading particle is not capitalised.
        CaseStyle::Title if starts_with_particle(canonical) => canonical.to_string(),
        CaseStyle::Title => capitalize_first(canonical),
        CaseStyle::Mixed => canonical.to_string(),
    }
}

fn starts_with_particle(s: &str) -> bool {
    matches!(s.split(' ').next(), Some("de" | "del" | "la" | "las" | "los" | "el" | "y"))
}

pub(crate) fn capitalize_first(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut done = false;
    for c in s.chars() {
        if !done && c.is_alphabetic() {
            out.extend(c.to_uppercase());
            done = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Same letter in the case of `like`.
pub(crate) fn char_in_case_of(c: char, like: char) -> char {
    if like.is_lowercase() {
        c.to_lowercase().next().unwrap_or(c)
    } else if like.is_uppercase() {
        c.to_uppercase().next().unwrap_or(c)
    } else {
        c
    }
}

#[inline]
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether a match of `needle` at byte range `[start, end)` of `hay` stands on word boundaries: the
/// characters just outside are not letters or digits, unless the needle itself begins or ends with a
/// non-word character (then that side needs no boundary).
pub(crate) fn bounded_at(hay: &str, needle_first: char, needle_last: char, start: usize, end: usize) -> bool {
    let left_ok = !is_word_char(needle_first) || hay[..start].chars().next_back().is_none_or(|c| !is_word_char(c));
    let right_ok = !is_word_char(needle_last) || hay[end..].chars().next().is_none_or(|c| !is_word_char(c));
    left_ok && right_ok
}

/// Whether `needle` occurs in `hay` on word boundaries (see [`bounded_at`]).
pub(crate) fn contains_word(hay: &str, needle: &str) -> bool {
    let (Some(first), Some(last)) = (needle.chars().next(), needle.chars().next_back()) else {
        return false;
    };
    hay.match_indices(needle).any(|(i, m)| bounded_at(hay, first, last, i, i + m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_and_case() {
        assert_eq!(loose_norm("  José   María\tCUÉLLAR "), "jose maria cuellar");
        assert_eq!(case_style("GARCÍA"), CaseStyle::Upper);
        assert_eq!(case_style("García"), CaseStyle::Title);
        assert_eq!(case_style("garcía"), CaseStyle::Lower);
        assert_eq!(case_style("McDonald"), CaseStyle::Title);
        assert_eq!(case_style("de la Fuente"), CaseStyle::Mixed);
        assert_eq!(case_style("H"), CaseStyle::Title);
        assert_eq!(case_style("2º"), CaseStyle::Mixed);
        assert_eq!(apply_case("Ávila", CaseStyle::Upper), "ÁVILA");
        assert_eq!(apply_case("agricultor", CaseStyle::Title), "Agricultor");
    }

    #[test]
    fn word_containment() {
        assert!(contains_word("calle mayor 12", "12"));
        assert!(!contains_word("calle mayor 123", "12"));
        assert!(!contains_word("mariana", "ana"));
        assert!(contains_word("ana maria", "ana"));
        assert!(contains_word("12/03/2015", "2015"));
        assert!(contains_word("x c/ mayor", "c/ mayor"));
    }
}
