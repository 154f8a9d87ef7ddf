//! Ages: find the (first) number, in digits or in Spanish words, and its unit; move the number by a small
//! amount; keep the unit (fixing singular/plural) and everything else.

use crate::date::{tokenize, TokKind};
use crate::text::{apply_case, case_style, fold_word};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Years,
    Months,
    Weeks,
    Days,
}

/// Whether a (folded) word is an age unit ("años", "meses", "days", ...).
pub(crate) fn is_unit_word(folded: &str) -> bool {
    unit_of(folded).is_some()
}

/// Whether a (folded) word is a Spanish number word ("tres", "veinte", "un").
pub(crate) fn is_number_word(folded: &str) -> bool {
    es_word_value(folded).is_some()
}

fn unit_of(folded: &str) -> Option<Unit> {
    Some(match folded {
        "ano" | "anos" | "a" | "aa" | "years" | "year" | "yrs" | "yr" | "y" | "yo" | "ar" | "ars" | "jahr" | "jahre"
        | "jahren" | "j" | "lj" => Unit::Years,
        "mes" | "meses" | "m" | "month" | "months" | "mo" | "manad" | "manader" | "man" | "monat" | "monate"
        | "monaten" | "mon" => Unit::Months,
        "semana" | "semanas" | "sem" | "week" | "weeks" | "wk" | "wks" | "vecka" | "veckor" | "woche" | "wochen" => {
            Unit::Weeks
        }
        "dia" | "dias" | "d" | "day" | "days" | "dag" | "dagar" | "dygn" | "tag" | "tage" | "tagen" => Unit::Days,
        _ => return None,
    })
}

/// Singular/plural forms of unit words, for `1 año` → `3 años` and back.
const UNIT_FORMS: [(&str, &str); 15] = [
    ("año", "años"),
    ("mes", "meses"),
    ("día", "días"),
    ("dia", "dias"),
    ("semana", "semanas"),
    ("year", "years"),
    ("month", "months"),
    ("week", "weeks"),
    ("day", "days"),
    ("månad", "månader"),
    ("vecka", "veckor"),
    ("jahr", "jahre"),
    ("monat", "monate"),
    ("woche", "wochen"),
    ("tag", "tage"),
];

fn fix_number(unit_word: &str, value: i64) -> String {
    let lower = unit_word.to_lowercase();
    for (sing, plur) in UNIT_FORMS {
        let want = if value == 1 { sing } else { plur };
        if lower == sing || lower == plur {
            return apply_case(want, case_style(unit_word));
        }
    }
    unit_word.to_string()
}

const ES_UNITS: [&str; 10] = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"];
const ES_TEENS: [&str; 10] =
    ["diez", "once", "doce", "trece", "catorce", "quince", "dieciseis", "diecisiete", "dieciocho", "diecinueve"];
const ES_TWENTIES: [&str; 10] = [
    "veinte",
    "veintiuno",
    "veintidos",
    "veintitres",
    "veinticuatro",
    "veinticinco",
    "veintiseis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
];
const ES_TENS: [&str; 10] =
    ["", "", "", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta", "ochenta", "noventa"];

/// Value of one Spanish number word (folded), 0–100.
fn es_word_value(w: &str) -> Option<i64> {
    match w {
        "un" | "una" => return Some(1),
        "veintiun" | "veintiuna" => return Some(21),
        "cien" | "ciento" => return Some(100),
        _ => {}
    }
    if let Some(i) = ES_UNITS.iter().position(|x| *x == w) {
        return Some(i as i64);
    }
    if let Some(i) = ES_TEENS.iter().position(|x| *x == w) {
        return Some(10 + i as i64);
    }
    if let Some(i) = ES_TWENTIES.iter().position(|x| *x == w) {
        return Some(20 + i as i64);
    }
    ES_TENS.iter().position(|x| !x.is_empty() && *x == w).map(|i| 10 * i as i64)
}

/// A Spanish number in words, 0–100; `feminine` picks "una"/"veintiuna" for 1 and 21.
pub(crate) fn es_words(n: i64, feminine: bool) -> Option<String> {
    let one = if feminine { "una" } else { "un" };
    Some(match n {
        0 => "cero".into(),
        1 => one.into(),
        2..=9 => ES_UNITS[n as usize].into(),
        10..=19 => ES_TEENS[(n - 10) as usize].replace("dieciseis", "dieciséis"),
        21 => {
            if feminine {
                "veintiuna".into()
            } else {
                "veintiún".into()
            }
        }
        20..=29 => ES_TWENTIES[(n - 20) as usize]
            .replace("veintidos", "veintidós")
            .replace("veintitres", "veintitrés")
            .replace("veintiseis", "veintiséis"),
        30..=99 => {
            let (t, u) = (n / 10, n % 10);
            if u == 0 {
                ES_TENS[t as usize].into()
            } else {
                format!("{} y {}", ES_TENS[t as usize], if u == 1 { one } else { ES_UNITS[u as usize] })
            }
        }
        100 => "cien".into(),
        _ => return None,
    })
}

/// Where the number is and how it is written.
enum NumForm {
    /// Token index of the digits.
    Digits(usize),
    /// Token range `[from, to]` of the words ("sesenta y tres").
    Words(usize, usize),
}

/// Moves the age in `s` by `delta` (in its own unit; a result below 1 uses `+|delta|` instead). `None`
/// when no number is found.
pub(crate) fn shift_age(s: &str, delta: i64) -> Option<String> {
    let toks = tokenize(s);
    // Find the first number.
    let mut found: Option<(NumForm, i64)> = None;
    for (i, (k, t)) in toks.iter().enumerate() {
        match k {
            TokKind::Num => {
                if t.len() > 3 {
                    return None;
                }
                found = Some((NumForm::Digits(i), t.parse().ok()?));
                break;
            }
            TokKind::Word => {
                let f = fold_word(t);
                if let Some(v) = es_word_value(&f) {
                    // "sesenta y tres": tens, "y", units.
                    let mut end = i;
                    let mut value = v;
                    if (30..=90).contains(&v) && v % 10 == 0 {
                        if let (Some((TokKind::Word, y)), Some((TokKind::Word, u))) = (toks.get(i + 2), toks.get(i + 4))
                        {
                            if fold_word(y) == "y" {
                                if let Some(uv) = es_word_value(&fold_word(u)).filter(|x| (1..=9).contains(x)) {
                                    value += uv;
                                    end = i + 4;
                                }
                            }
                        }
                    }
                    found = Some((NumForm::Words(i, end), value));
                    break;
                }
            }
            TokKind::Other => {}
        }
    }
    let (form, value) = found?;
    let last = match form {
        NumForm::Digits(i) => i,
        NumForm::Words(_, e) => e,
    };
    // The unit is the next word after optional spaces.
    let unit_tok = toks.iter().enumerate().skip(last + 1).find(|(_, (k, _))| *k != TokKind::Other);
    let unit_idx = unit_tok.and_then(|(i, (k, t))| {
        (*k == TokKind::Word
            && unit_of(&fold_word(t)).is_some()
            && toks[last + 1..i].iter().all(|(_, x)| x.trim().is_empty()))
        .then_some(i)
    });
    let mut new = value + delta;
    if new < 1 {
        new = value + delta.abs();
    }
    let mut out: Vec<String> = toks.iter().map(|(_, t)| t.to_string()).collect();
    match form {
        NumForm::Digits(i) => {
            let t = toks[i].1;
            out[i] =
                if t.starts_with('0') && t.len() > 1 { format!("{new:0w$}", w = t.len()) } else { new.to_string() };
        }
        NumForm::Words(a, b) => {
            let first = toks[a].1;
            let feminine = unit_idx.is_some_and(|u| fold_word(toks[u].1).starts_with("semana"));
            let w = es_words(new, feminine)?;
            out[a] = apply_case(&w, case_style(first));
            for o in out.iter_mut().take(b + 1).skip(a + 1) {
                o.clear();
            }
        }
    }
    if let Some(u) = unit_idx {
        out[u] = fix_number(toks[u].1, new);
    }
    Some(out.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_move_and_keep_units() {
        assert_eq!(shift_age("70 años", 2).unwrap(), "72 años");
        assert_eq!(shift_age("70", -1).unwrap(), "69");
        assert_eq!(shift_age("1 año", 2).unwrap(), "3 años");
        assert_eq!(shift_age("2 meses", -1).unwrap(), "1 mes");
        assert_eq!(shift_age("1 mes", -2).unwrap(), "3 meses");
        assert_eq!(shift_age("tres años", 1).unwrap(), "cuatro años");
        assert_eq!(shift_age("Sesenta y tres años", -3).unwrap(), "Sesenta años");
        assert_eq!(shift_age("sesenta años", 1).unwrap(), "sesenta y un años");
        assert_eq!(shift_age("un mes y medio", 1).unwrap(), "dos meses y medio");
        assert_eq!(shift_age("3 años y 4 meses", 1).unwrap(), "4 años y 4 meses");
        assert_eq!(shift_age("45 AÑOS", 1).unwrap(), "46 AÑOS");
        assert!(shift_age("Recién nacido", 1).is_none());
        assert_eq!(shift_age("45 Jahre", 1).unwrap(), "46 Jahre");
        assert_eq!(shift_age("2 Jahre", -1).unwrap(), "1 Jahr");
        assert_eq!(shift_age("3 Monate", 2).unwrap(), "5 Monate");
        assert_eq!(shift_age("45-jährig", 2).unwrap(), "47-jährig");
    }
}
