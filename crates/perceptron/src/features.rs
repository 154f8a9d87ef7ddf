//! CRFsuite-style token features, hashed to u64 (FNV-1a: stable across runs and platforms).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use corpus::Token;
use lang::Language;
use tagging::shape::{fnv, run_shape, shape_char};

/// `Xxxx` → `Xx`, `12/03/2017` → `d/d/d`: the shape with runs collapsed.
fn short_shape(w: &str) -> String {
    run_shape(w, 1)
}

/// The full shape, capped at 8 characters.
fn shape(w: &str) -> String {
    w.chars()
        .take(8)
        .map(shape_char)
        .collect()
}

/// The word lists (from the `lang` crate) that one language's features read.
struct Lists {
    /// Month names of the language, then English ones (as Spanish features have always had).
    months: Vec<&'static str>,
    /// Empty where the language's features do not use them (Spanish: see [`Lists::of`]).
    weekdays: HashSet<&'static str>,
    /// Field name → the kind of value after it; `*`-entries (suffixes) apart.
    fields: HashMap<&'static str, &'static str>,
    field_suffixes: Vec<(&'static str, &'static str)>,
    kin: HashSet<&'static str>,
    /// Keyword class, its words and its `*`-suffixes, in the order classes are tried.
    keywords: Vec<(&'static str, HashSet<&'static str>, Vec<&'static str>)>,
    street_slash: HashSet<&'static str>,
    joiners: HashSet<&'static str>,
}

impl Lists {
    /// The lists of `lang`'s features. Spanish features are those MEDDOCAN's taggers were trained
    /// and their feature sets chosen with (a model saved without a language is Spanish): they
    /// read no field-name or weekday list. Other languages' features read all of their lists.
    fn of(lang: Language) -> Lists {
        let set = |name: &str| -> HashSet<&'static str> { lang::list(lang, name).iter().copied().collect() };
        let plain_and_suffixes = |name: &str| -> (HashSet<&'static str>, Vec<&'static str>) {
            let l = lang::list(lang, name);
            (l.iter().copied().filter(|e| !e.starts_with('*')).collect(), l.iter().filter_map(|e| e.strip_prefix('*')).collect())
        };
        let frozen = lang == Language::Es;
        let mut months: Vec<&'static str> = lang::list(lang, "months").to_vec();
        if lang != Language::En {
            months.extend(lang::list(Language::En, "months"));
        }
        let mut fields = HashMap::new();
        let mut field_suffixes = Vec::new();
        if !frozen {
            for e in lang::list(lang, "fields") {
                let Some((kind, word)) = e.split_once(char::is_whitespace) else { continue };
                let word = word.trim();
                match word.strip_prefix('*') {
                    Some(suffix) => field_suffixes.push((suffix, kind)),
                    None => {
                        fields.entry(word).or_insert(kind);
                    }
                }
            }
        }
        let keywords = [
            ("street", "kw_street"),
            ("hospital", "kw_hospital"),
            ("institution", "kw_institution"),
            ("unit", "kw_unit"),
            ("title", "kw_title"),
            ("postcode", "kw_postcode"),
        ]
        .into_iter()
        .map(|(class, name)| {
            let (words, suffixes) = plain_and_suffixes(name);
            (class, words, suffixes)
        })
        .collect();
        Lists {
            months,
            weekdays: if frozen { HashSet::new() } else { set("weekdays") },
            fields,
            field_suffixes,
            // A word is kin when it is on the list without its trailing s's.
            kin: lang::list(lang, "kinship").iter().map(|e| e.trim_end_matches('s')).collect(),
            keywords,
            street_slash: set("kw_street_slash"),
            joiners: set("name_joiners"),
        }
    }

    fn get(lang: Language) -> &'static Lists {
        static L: OnceLock<Vec<Lists>> = OnceLock::new();
        let all = L.get_or_init(|| Language::ALL.iter().map(|&l| Lists::of(l)).collect());
        &all[Language::ALL.iter().position(|&l| l == lang).expect("every language has lists")]
    }

    /// The kind of a field name (`nombre`, `geburtsdatum`), if it is one.
    fn field_kind(&self, lower: &str) -> Option<&'static str> {
        self.fields.get(lower).copied().or_else(|| {
            self.field_suffixes.iter().find(|(s, _)| lower.len() > s.len() && lower.ends_with(s)).map(|(_, k)| *k)
        })
    }
}

/// A month name or its usual short form (of the language, or English): `junio`, `sep`, `Sept`, `dic`.
fn is_month(lower: &str, lists: &Lists) -> bool {
    let l = lower.trim_end_matches('.');
    if l.chars().count() < 3 {
        return false;
    }
    lists.months.iter().any(|m| *m == l || (l.chars().count() <= 4 && m.starts_with(l)))
}

/// The value class of a number-like token, independent of its separator: dates written
/// `22-3-09`, `22/03/2009` and `22.03.09` share `date` (day ≤ 31, month ≤ 12, in either order),
/// four-digit years share `year`. Dash dates are rare in training, slash dates common: the class
/// lets what was learned on one carry to the other.
fn number_class(w: &str) -> Option<&'static str> {
    let parts: Vec<&str> = w.split(['/', '-', '.']).collect();
    if !parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let n: Vec<u32> = parts.iter().map(|p| p.parse().unwrap_or(u32::MAX)).collect();
    let len = |i: usize| parts[i].len();
    let day_month = |a: u32, b: u32| (1..=31).contains(&a) && (1..=12).contains(&b) || (1..=12).contains(&a) && (1..=31).contains(&b);
    match n.len() {
        1 if len(0) == 4 && (1900..=2099).contains(&n[0]) => Some("year"),
        // A Spanish or Mexican postcode (5 digits); a class from feature set 2 on.
        1 if len(0) == 5 => Some("5digits"),
        3 if len(0) <= 2 && len(1) <= 2 && (len(2) == 2 || len(2) == 4) && day_month(n[0], n[1]) => Some("date"),
        3 if len(0) == 4 && len(1) <= 2 && len(2) <= 2 && day_month(n[2], n[1]) => Some("date"),
        2 if len(0) <= 2 && (len(1) == 2 || len(1) == 4) && (1..=12).contains(&n[0]) => Some("month/year"),
        _ => None,
    }
}

/// The shape of a number with its separators made one: `22-3-09` and `22/3/09` → `dd/d/dd`.
fn number_shape(w: &str) -> Option<String> {
    if !w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(w.chars().take(12).map(|c| if c.is_ascii_digit() { 'd' } else if matches!(c, '-' | '/' | '.') { '/' } else { c }).collect())
}

/// A word-class for a token: a month name, a weekday (not for Spanish), a number's value class,
/// or nothing.
fn word_class(w: &str, lower: &str, lists: &Lists) -> Option<&'static str> {
    if is_month(lower, lists) {
        Some("month")
    } else if lists.weekdays.contains(lower) {
        Some("weekday")
    } else if w.contains('@') {
        Some("email")
    } else if lower.starts_with("http") || lower.starts_with("www.") {
        Some("url")
    } else {
        number_class(w)
    }
}

/// The feature set new taggers are trained with. A saved tagger records its own (1 when it
/// predates the field), so it keeps computing the features its weights were learned on.
pub const FEATURE_SET: u32 = 3;

/// Words that open a street, an institution's name, a unit within one, or a person's name (the
/// language's `kw_*` lists). In a signature line ("Dr. Ana Gil Sáenz Hospital de Getafe Carretera
/// Toledo 28905 Getafe") entities follow each other without punctuation; these words are where a
/// new one starts. Five hundred documents hold few `Carretera`s, but many `Calle`s: the class
/// carries what was learned on the common ones to the rare ones. `next` is the token after (`C`
/// `/` is a street). A list's `*`-entries match as suffixes of longer words (`Hauptstraße`).
fn keyword_class(lower: &str, next: &str, lists: &Lists) -> Option<&'static str> {
    if let Some((class, ..)) = lists.keywords.iter().find(|(_, words, _)| words.contains(lower)) {
        return Some(class);
    }
    if next == "/" && lists.street_slash.contains(lower) {
        return Some("street");
    }
    lists
        .keywords
        .iter()
        .find(|(_, _, suffixes)| suffixes.iter().any(|s| lower.len() > s.len() && lower.ends_with(s)))
        .map(|(class, ..)| *class)
}

/// Kinship words (the language's `kinship` list): family members of the patient are PHI
/// (`FAMILIARES_SUJETO_ASISTENCIA`).
fn is_kin(lower: &str, lists: &Lists) -> bool {
    lists.kin.contains(lower.trim_end_matches('s'))
}

/// Features of every token of `text`, in feature set `set` (see [`FEATURE_SET`]), with the word
/// lists of `lang`.
pub fn token_features(text: &str, tokens: &[Token], set: u32, lang: Language) -> Vec<Vec<u64>> {
    let lists = Lists::get(lang);
    let chars: Vec<char> = text.chars().collect();
    let words: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let shapes: Vec<String> = words.iter().map(|w| short_shape(w)).collect();
    let gaz = crate::gazetteer::matches(&lower, lang);
    let classes: Vec<String> = words.iter().zip(&lower).map(|(w, l)| word_class(w, l, lists).filter(|c| set >= 2 || *c != "5digits").unwrap_or("-").to_string()).collect();
    // Whether a line break precedes the token (header fields start lines).
    let line_start: Vec<bool> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| i == 0 || chars[tokens[i - 1].end..t.start].contains(&'\n'))
        .collect();
    // Inside a parenthesis, which comma-separated part a token is in: "(Tobradex, Alcon Cusí,
    // Madrid)" names a product, its maker (an institution) and a town, in that order.
    let mut paren_part: Vec<Option<usize>> = vec![None; tokens.len()];
    let mut part: Option<usize> = None;
    for i in 0..tokens.len() {
        if line_start[i] {
            part = None;
        }
        match words[i].as_str() {
            "(" => part = Some(0),
            ")" => part = None,
            "," | ";" => part = part.map(|p| p + 1),
            _ => paren_part[i] = part,
        }
    }
    let keywords: Vec<String> = (0..tokens.len())
        .map(|i| keyword_class(&lower[i], words.get(i + 1).map_or("", |w| w.as_str()), lists).unwrap_or("-").to_string())
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
            if let Some(ns) = number_shape(w) {
                f.push(fnv(&["nshape", &ns]));
            }
            f.push(fnv(&["class", &classes[i]]));
            for d in [-2isize, -1, 1, 2] {
                f.push(fnv(&["class", &d.to_string(), get(&classes, ii + d)]));
            }
            for (list, pos) in &gaz[i] {
                f.push(fnv(&["gaz", list, pos]));
                f.push(fnv(&["gaz|sshape", list, pos, &shapes[i]]));
            }
            for d in [-1isize, 1] {
                if let Some(g) = usize::try_from(ii + d).ok().and_then(|j| gaz.get(j)) {
                    for (list, pos) in g {
                        f.push(fnv(&["gaz", &d.to_string(), list, pos]));
                    }
                }
            }
            f.push(fnv(&["class-1|class|class+1", get(&classes, ii - 1), &classes[i], get(&classes, ii + 1)]));
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
            let key = (j..i).rev().find(|&k| k + 1 < i && words[k + 1] == ":");
            if let Some(k) = key {
                f.push(fnv(&["key", &lower[k]]));
            }
            if let Some(p) = paren_part[i] {
                let p = p.min(3).to_string();
                f.push(fnv(&["paren", &p]));
                f.push(fnv(&["paren|sshape", &p, &shapes[i]]));
            }
            for d in [-3isize, 3] {
                f.push(fnv(&["l", &d.to_string(), get(&lower, ii + d)]));
            }
            f.push(fnv(&["l-1|l+1", get(&lower, ii - 1), get(&lower, ii + 1)]));
            // Position in a run of capitalised words (multi-word names of hospitals, institutions).
            // From feature set 2 a run also ends at a line break and before a keyword, which
            // starts the next entity of a signature line.
            let cap = |k: usize| words[k].chars().next().is_some_and(|c| c.is_uppercase());
            let joins = |k: usize| cap(k) || lists.joiners.contains(lower[k].as_str());
            let starts_run = |k: usize| set >= 2 && (line_start[k] || keywords[k] != "-");
            if cap(i) {
                let before = (0..i).rev().take_while(|&k| joins(k) && !starts_run(k + 1)).count();
                let after = (i + 1..words.len()).take_while(|&k| joins(k) && !starts_run(k)).count();
                f.push(fnv(&["caprun", &before.min(3).to_string(), &after.min(3).to_string()]));
                // The first word of the run (e.g. "hospital", "centro", "servicio").
                let first = i - before;
                f.push(fnv(&["caprun_head", &lower[first]]));
            }
            if set >= 3 {
                for d in [-1isize, 0, 1] {
                    if usize::try_from(ii + d).ok().and_then(|k| lower.get(k)).is_some_and(|l| is_kin(l, lists)) {
                        f.push(fnv(&["kin", &d.to_string()]));
                    }
                }
            }
            if set >= 2 {
                for d in [-2isize, -1, 0, 1, 2] {
                    f.push(fnv(&["kw", &d.to_string(), get(&keywords, ii + d)]));
                }
                f.push(fnv(&["kw-1|kw|kw+1", get(&keywords, ii - 1), &keywords[i], get(&keywords, ii + 1)]));
                // The nearest keyword before this token on its line, how far back, and whether
                // a comma or a full stop lies between: after "Carretera", "Toledo" is the street.
                let mut punct = false;
                for k in (j..i).rev().take(6) {
                    if keywords[k] != "-" {
                        let d = (i - k).min(4).to_string();
                        f.push(fnv(&["kw_before", &keywords[k], &d, if punct { "p" } else { "-" }]));
                        f.push(fnv(&["kw_before|sshape", &keywords[k], if punct { "p" } else { "-" }, &shapes[i]]));
                        break;
                    }
                    if matches!(words[k].as_str(), "," | ";") || (words[k] == "." && !(k > 0 && keywords[k - 1] != "-")) {
                        punct = true;
                    }
                }
            }
            // Field names of the language (none for Spanish): the kind of the field this token's
            // value belongs to ("Geburtsdatum: 3.4.1950" → date), and the field name itself.
            if let Some(kind) = key.and_then(|k| lists.field_kind(&lower[k])) {
                f.push(fnv(&["field", kind]));
                f.push(fnv(&["field|sshape", kind, &shapes[i]]));
            }
            if words.get(i + 1).is_some_and(|w| w == ":") {
                if let Some(kind) = lists.field_kind(l) {
                    f.push(fnv(&["fieldname", kind]));
                }
            }
            f
        })
        .collect()
}

/// Features from a first-stage tagger's tags for the same tokens (stacking): the tags around a
/// token (label context beyond the first-order transitions), what the same word was tagged
/// elsewhere in the document (names and places recur: "Sr. Pérez … Pérez refiere"), and the
/// entities predicted before and after it on its line (an address line runs street → postcode →
/// town → country). Appended to [`token_features`].
pub fn stack_features(text: &str, tokens: &[Token], tags: &[&str], out: &mut [Vec<u64>]) {
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect::<String>().to_lowercase()).collect();
    let ty = |t: &str| -> String { t.get(2..).unwrap_or("O").to_string() };
    let get = |i: isize| -> &str {
        if i < 0 {
            "<s>"
        } else {
            tags.get(i as usize).copied().unwrap_or("</s>")
        }
    };
    let line_start: Vec<bool> =
        tokens.iter().enumerate().map(|(i, t)| i == 0 || chars[tokens[i - 1].end..t.start].contains(&'\n')).collect();
    // Per lowercased word: how often each type was predicted for it in this document.
    let mut by_word: std::collections::HashMap<&str, std::collections::HashMap<String, usize>> = std::collections::HashMap::new();
    for (l, t) in lower.iter().zip(tags) {
        *by_word.entry(l.as_str()).or_default().entry(ty(t)).or_default() += 1;
    }
    // The start of the predicted entity each token is in (a `B-` or a stray `I-`).
    let mut entity_start: Vec<Option<usize>> = vec![None; tags.len()];
    for i in 0..tags.len() {
        entity_start[i] = match tags[i].strip_prefix("I-").or_else(|| tags[i].strip_prefix("L-")) {
            Some(l) if i > 0 && ty(tags[i - 1]) == l => entity_start[i - 1],
            _ if tags[i] == "O" => None,
            _ => Some(i),
        };
    }
    for (i, f) in out.iter_mut().enumerate() {
        let ii = i as isize;
        f.push(fnv(&["s0", tags[i]]));
        for d in [-2isize, -1, 1, 2] {
            f.push(fnv(&["s", &d.to_string(), get(ii + d)]));
        }
        f.push(fnv(&["s-1|s0|s+1", get(ii - 1), tags[i], get(ii + 1)]));
        // The same word elsewhere in the document (this occurrence left out), for words that
        // can be names: at least two characters, with a letter or a digit.
        let l = lower[i].as_str();
        if l.chars().count() >= 2 && l.chars().any(|c| c.is_alphanumeric()) {
            let own_type = ty(tags[i]);
            let others = by_word[l].iter().map(|(t, &n)| (t, if *t == own_type { n - 1 } else { n })).filter(|(_, n)| *n > 0);
            // The most frequent type, ties to the alphabetically first (deterministic).
            if let Some((best, _)) = others.max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))) {
                f.push(fnv(&["doc", best]));
                f.push(fnv(&["doc|s0", best, tags[i]]));
            }
        }
        // The nearest entities before and after this token's own on its line.
        let own = entity_start[i];
        let mut prev = "<line>".to_string();
        let mut k = i;
        while !line_start[k] {
            k -= 1;
            if entity_start[k].is_some() && entity_start[k] != own {
                prev = ty(tags[k]);
                break;
            }
        }
        let mut next = "</line>".to_string();
        for k in i + 1..tags.len() {
            if line_start[k] {
                break;
            }
            if entity_start[k].is_some() && entity_start[k] != own {
                next = ty(tags[k]);
                break;
            }
        }
        f.push(fnv(&["prev_ent", &prev]));
        f.push(fnv(&["next_ent", &next]));
        f.push(fnv(&["prev_ent|s0|next_ent", &prev, tags[i], &next]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_share_a_class_whatever_their_separator() {
        for d in ["22-3-09", "22/03/2009", "4.8.04", "2009-03-22", "11/10/01"] {
            assert_eq!(number_class(d), Some("date"), "{d}");
        }
        for not in ["28-0123", "45/32/2009", "3,5", "123-45-678", "2670", "13-2009x"] {
            assert_ne!(number_class(not), Some("date"), "{not}");
        }
        assert_eq!(number_class("1998"), Some("year"));
        assert_eq!(number_class("2670"), None);
        assert_eq!(number_class("07/2004"), Some("month/year"));
        assert_eq!(number_shape("22-3-09").as_deref(), Some("dd/d/dd"));
        assert_eq!(number_shape("22/3/09"), number_shape("22-3-09"));
        assert_eq!(number_shape("Calle"), None);
    }

    #[test]
    fn month_names_and_short_forms() {
        let es = Lists::get(Language::Es);
        for m in ["junio", "diciembre", "sep", "sept.", "dic", "october", "mayo"] {
            assert!(is_month(m, es), "{m}");
        }
        for w in ["ju", "dice", "septiembres", "el", "marido", "märz"] {
            assert!(!is_month(w, es), "{w}");
        }
        let de = Lists::get(Language::De);
        for m in ["märz", "dez", "mai", "oktober", "october"] {
            assert!(is_month(m, de), "{m}");
        }
        assert!(!is_month("junio", de) && is_month("maj", Lists::get(Language::Sv)));
    }

    #[test]
    fn keywords_split_a_signature_line_into_its_entities() {
        let text = "Dra. Ana Gil Hospital de Getafe Carretera Toledo, 28905 Getafe\nsu madre";
        let tokens = corpus::tokenize(text);
        let chars: Vec<char> = text.chars().collect();
        let words: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
        let at = |w: &str| words.iter().position(|x| x == w).unwrap();
        let (hospital, carretera, toledo, postcode) = (at("Hospital"), at("Carretera"), at("Toledo"), at("28905"));
        let new = token_features(text, &tokens, FEATURE_SET, Language::Es);
        let old = token_features(text, &tokens, 1, Language::Es);
        let has = |fs: &[Vec<u64>], i: usize, parts: &[&str]| fs[i].contains(&fnv(parts));
        // A capitalised run ends before a keyword: "Hospital" starts a run of its own (set 2 on),
        // where set 1 ran it on from the doctor's name.
        assert!(has(&new, hospital, &["caprun", "0", "2"]) && has(&new, hospital, &["caprun_head", "hospital"]));
        assert!(has(&old, hospital, &["caprun_head", "ana"]));
        assert!(has(&new, carretera, &["caprun", "0", "1"]) && has(&new, carretera, &["kw", "0", "street"]));
        assert!(has(&new, carretera - 1, &["kw", "1", "street"]));
        // After the keyword: how far back it is, and whether a comma lies between.
        assert!(has(&new, toledo, &["kw_before", "street", "1", "-"]));
        assert!(has(&new, postcode, &["kw_before", "street", "3", "p"]));
        assert!(has(&new, postcode, &["class", "5digits"]) && !has(&old, postcode, &["class", "5digits"]));
        assert!(has(&new, at("Ana"), &["kw_before", "title", "2", "-"]));
        // A kinship word, and the words beside it; none of this in set 1.
        assert!(has(&new, at("madre"), &["kin", "0"]) && has(&new, at("su"), &["kin", "1"]));
        assert!(!has(&old, at("madre"), &["kin", "0"]) && !has(&old, toledo, &["kw", "0", "-"]));
    }

    fn features_of(text: &str, lang: Language) -> (Vec<String>, Vec<Vec<u64>>) {
        let tokens = corpus::tokenize(text);
        let chars: Vec<char> = text.chars().collect();
        let words = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
        (words, token_features(text, &tokens, FEATURE_SET, lang))
    }

    #[test]
    fn german_field_names_fire_under_german_only() {
        let text = "Name: Müller, Hans\nGeburtsdatum: 03.04.1950\nAufnahmedatum: 12.05.2021";
        let (words, de) = features_of(text, Language::De);
        let (_, es) = features_of(text, Language::Es);
        let at = |w: &str| words.iter().position(|x| x == w).unwrap();
        let has = |fs: &[Vec<u64>], i: usize, parts: &[&str]| fs[i].contains(&fnv(parts));
        assert!(has(&de, at("Name"), &["fieldname", "name"]) && has(&de, at("Müller"), &["field", "name"]));
        assert!(has(&de, at("Geburtsdatum"), &["fieldname", "date"]) && has(&de, at("03.04.1950"), &["field", "date"]));
        // A suffix entry: *datum.
        assert!(has(&de, at("12.05.2021"), &["field", "date"]));
        for (i, _) in words.iter().enumerate() {
            for kind in ["name", "date", "id", "contact", "address", "age", "institution", "profession"] {
                assert!(!has(&es, i, &["field", kind]) && !has(&es, i, &["fieldname", kind]), "{} under es", words[i]);
            }
        }
        // Spanish field names do not fire under Spanish either: its features are MEDDOCAN's.
        let (words, es) = features_of("Nombre: Ana\nFecha de nacimiento: 3/4/1950", Language::Es);
        assert!(!es.iter().flatten().any(|h| *h == fnv(&["fieldname", "name"]) || *h == fnv(&["field", "date"])), "{words:?}");
    }

    #[test]
    fn word_lists_follow_the_language() {
        let text = "Die Mutter und der Bruder wohnen in der Hauptstraße 5, Berlin. Dr. Anna Schmidt, Klinik für Innere Medizin, am Montag.";
        let (words, de) = features_of(text, Language::De);
        let (_, es) = features_of(text, Language::Es);
        let at = |w: &str| words.iter().position(|x| x == w).unwrap();
        let has = |fs: &[Vec<u64>], i: usize, parts: &[&str]| fs[i].contains(&fnv(parts));
        assert!(has(&de, at("Mutter"), &["kin", "0"]) && has(&de, at("Bruder"), &["kin", "0"]));
        assert!(!has(&es, at("Mutter"), &["kin", "0"]));
        assert!(has(&de, at("Hauptstraße"), &["kw", "0", "street"]) && !has(&es, at("Hauptstraße"), &["kw", "0", "street"]));
        assert!(has(&de, at("Klinik"), &["kw", "0", "hospital"]));
        assert!(has(&de, at("Montag"), &["class", "weekday"]) && !has(&es, at("Montag"), &["class", "weekday"]));
        // "für" continues a run of capitalised words in German, not in Spanish.
        let klinik = at("Klinik");
        assert!(has(&de, klinik, &["caprun", "0", "3"]), "Klinik für Innere Medizin");
        assert!(has(&es, klinik, &["caprun", "0", "0"]));
        // Spanish keywords do not fire on a German text.
        let (words, de) = features_of("Calle Mayor 3, Hospital de la Paz, su madre", Language::De);
        let calle = words.iter().position(|x| x == "Calle").unwrap();
        assert!(!de[calle].contains(&fnv(&["kw", "0", "street"])));
        assert!(!de.iter().flatten().any(|h| *h == fnv(&["kin", "0"])));
    }

    /// One number for every feature of every token of `text` in feature set `set`, in order.
    fn digest_of_features(text: &str, set: u32) -> u64 {
        let tokens = corpus::tokenize(text);
        token_features(text, &tokens, set, Language::Es)
            .iter()
            .flatten()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, f| (h ^ f).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// Taggers saved with feature set 1 still compute exactly its features: a digest of every
    /// feature of a text that exercises all of them, taken when set 1 was the only set.
    #[test]
    fn feature_set_1_is_frozen() {
        let text = "Remitido por: Dra. Ana Gil Hospital de Getafe Carretera Toledo, 28905 Getafe (Madrid).\n\
                    Fecha: 22-3-09. NHC: 1234567. Su madre (Tobradex, Alcon Cusí, Madrid) ana@x.es junio 2009";
        assert_eq!(digest_of_features(text, 1), 5002452636108914039, "feature set 1 changed: taggers saved with it would tag differently");
    }

    /// The same for feature set 3 (the guide of BENCHMARKS.md's stacked5), so that a later set
    /// cannot change what saved set-3 taggers compute.
    #[test]
    fn feature_set_3_is_frozen() {
        let text = "Remitido por: Dra. Ana Gil Médico Hospital de Getafe Carretera Toledo, 28905 Getafe (Madrid).\n\
                    Fecha: 22-3-09. NHC: 1234567. Su madre (Tobradex, Alcon Cusí, Madrid) ana@x.es junio 2009.\n\
                    Hermana de 55 años; su hermano mayor, Ovidio, y el Centro de Salud Getafe.";
        assert_eq!(digest_of_features(text, 3), 15333536674309605581, "feature set 3 changed: taggers saved with it would tag differently");
    }

    #[test]
    fn stack_features_see_the_same_word_elsewhere_and_the_entities_around() {
        let text = "Pérez vive en Soria.\nPérez , Soria";
        let tokens = corpus::tokenize(text);
        let chars: Vec<char> = text.chars().collect();
        let words: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
        assert_eq!(words, ["Pérez", "vive", "en", "Soria", ".", "Pérez", ",", "Soria"]);
        let tags = ["B-NOMBRE", "O", "O", "B-TERRITORIO", "O", "O", "O", "B-TERRITORIO"];
        let mut out = vec![vec![]; tokens.len()];
        stack_features(text, &tokens, &tags, &mut out);
        let has = |i: usize, parts: &[&str]| out[i].contains(&fnv(parts));
        // The second "Pérez", tagged O, was a name earlier in the document.
        assert!(has(5, &["doc", "NOMBRE"]) && has(5, &["doc|s0", "NOMBRE", "O"]));
        // Its first occurrence only sees the other one (O); "vive" occurs once, so no feature.
        assert!(has(0, &["doc", "O"]));
        assert!(!out[1].iter().any(|h| ["NOMBRE", "O", "TERRITORIO"].iter().any(|t| *h == fnv(&["doc", t]))));
        // Entities before and after, on the same line only.
        assert!(has(1, &["prev_ent", "NOMBRE"]) && has(1, &["next_ent", "TERRITORIO"]));
        assert!(has(3, &["next_ent", "</line>"]) && has(5, &["prev_ent", "<line>"]));
        assert!(has(6, &["next_ent", "TERRITORIO"]));
        assert!(has(0, &["s", "-1", "<s>"]) && has(0, &["s-1|s0|s+1", "<s>", "B-NOMBRE", "O"]));
    }
}
