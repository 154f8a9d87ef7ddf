//! Dates: parse the usual written forms (`3 de marzo de 2015`, `03/03/2015`, `3/3/15`, `marzo de 2015`,
//! `2015`, `2015-03-03`, `March 3, 2015`, `3 mars 2015`, `3.4.2019`, `3. April 2019`, `3. Apr. 2019`), shift them by a number of days, and write them
//! back in exactly the original format (zero padding, two- or four-digit year, month name language,
//! abbreviation and capitalisation, separators and filler words).
//!
//! Partial dates are shifted through an anchor: a month-year through the 15th of the month, a year through
//! 2 July, a date without a year through the leap year 2000. With offsets of at least a year plus a month
//! (see `Surrogator::date_offset_days`), every parsed date, partial or not, comes out different.

use crate::text::{apply_case, case_style, CaseStyle};
use crate::vocab::Language;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

// Spanish, English and Swedish month names, in the order of `Language::index`; German comes from the `lang`
// crate (see `month_tables`).
const MONTHS_FULL: [[&str; 12]; 3] = [
    [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ],
    [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ],
];
const MONTHS_ABBR: [[&str; 12]; 3] = [
    ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"],
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    ["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"],
];
/// German names if the `lang` crate's list is unusable (it is built in, so only a broken build gets here).
const DE_MONTHS: [&str; 12] =
    ["januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "dezember"];

/// Full and abbreviated month names per language (see [`month_tables`]).
type MonthTables = ([[&'static str; 12]; 4], [[&'static str; 12]; 4]);

/// Full and abbreviated month names of every language, indexed by `Language::index`. German reads the `lang`
/// crate's built-in `months.txt` (the built-in list, not a user's extension, which may add variants and
/// break the one-name-per-month order); its abbreviations are the first three letters (`Jan`, `Mär`, `Dez`).
fn month_tables() -> &'static MonthTables {
    static T: std::sync::OnceLock<MonthTables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let l = lang::builtin_list(lang::Language::De, "months");
        let de: [&'static str; 12] = match <[&'static str; 12]>::try_from(l) {
            Ok(a) if a.iter().all(|m| m.chars().all(char::is_lowercase)) => a,
            _ => DE_MONTHS,
        };
        let abbr: [&'static str; 12] = de.map(|m| {
            let end = m.char_indices().nth(3).map_or(m.len(), |(i, _)| i);
            &m[..end]
        });
        let [es, en, sv] = MONTHS_FULL;
        let [aes, aen, asv] = MONTHS_ABBR;
        ([es, en, sv, de], [aes, aen, asv, abbr])
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MonthWord {
    lang: usize,
    abbr: bool,
    month: u32,
    case: CaseStyle,
}

/// Looks a word up as a month name: the document language first (full names, then abbreviations), then
/// the other languages.
fn month_word(word: &str, lang: Language) -> Option<MonthWord> {
    let w = word.to_lowercase();
    let w = match w.as_str() {
        "setiembre" => "septiembre".to_string(),
        "sept" => "sep".to_string(),
        // German: "Mrz" and the ASCII spellings of März.
        "mrz" => "mär".to_string(),
        "maerz" | "marz" => "märz".to_string(),
        _ => w,
    };
    let first = lang.index();
    // The document language first, then Spanish / English / Swedish in their old order, German last (so
    // the other languages read every name as before).
    let order = if first == 3 { [3, 0, 1, 2] } else { [first, (first + 1) % 3, (first + 2) % 3, 3] };
    let (full, short) = month_tables();
    for abbr in [false, true] {
        for &l in &order {
            let table = if abbr { &short[l] } else { &full[l] };
            if let Some(i) = table.iter().position(|m| *m == w) {
                return Some(MonthWord { lang: l, abbr, month: i as u32 + 1, case: case_style(word) });
            }
        }
    }
    None
}

fn month_name(m: MonthWord, month: u32) -> String {
    let (full, short) = month_tables();
    let table = if m.abbr { &short[m.lang] } else { &full[m.lang] };
    apply_case(table[(month - 1) as usize], m.case)
}

fn is_filler(w: &str) -> bool {
    matches!(
        w.to_lowercase().as_str(),
        "de" | "del"
            | "año"
            | "el"
            | "en"
            | "mes"
            | "día"
            | "dia"
            | "of"
            | "the"
            | "in"
            | "on"
            | "year"
            | "den"
            | "år"
            | "y"
            | "im"
            | "am"
            | "vom"
            | "des"
    )
}

fn is_ordinal_suffix(w: &str) -> bool {
    matches!(w.to_lowercase().as_str(), "st" | "nd" | "rd" | "th" | "º" | "ª" | "o" | "er" | "e" | ":e" | ":a")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    Num,
    Word,
    Other,
}

/// Splits into runs of ASCII digits, runs of letters, and runs of anything else.
pub(crate) fn tokenize(s: &str) -> Vec<(TokKind, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cur: Option<TokKind> = None;
    for (i, c) in s.char_indices() {
        let k = if c.is_ascii_digit() {
            TokKind::Num
        } else if c.is_alphabetic() {
            TokKind::Word
        } else {
            TokKind::Other
        };
        if cur != Some(k) {
            if let Some(ck) = cur {
                out.push((ck, &s[start..i]));
            }
            start = i;
            cur = Some(k);
        }
    }
    if let Some(ck) = cur {
        out.push((ck, &s[start..]));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Day,
    Month,
    Year,
}

/// A parsed date: which token holds which field, and the value (year `None` when not written).
#[derive(Debug)]
struct Parsed {
    roles: Vec<(usize, Role)>,
    month_word: Option<(usize, MonthWord)>,
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
}

fn year_value(tok: &str) -> Option<i64> {
    let v: i64 = tok.parse().ok()?;
    match tok.len() {
        2 => Some(if v <= 30 { 2000 + v } else { 1900 + v }),
        4 if (1800..=2200).contains(&v) => Some(v),
        _ => None,
    }
}

/// A day or month number: one or two digits, or three with a leading zero ("011", a common typo).
fn small(tok: &str) -> Option<u32> {
    if tok.len() <= 2 || (tok.len() == 3 && tok.starts_with('0')) {
        tok.parse().ok()
    } else {
        None
    }
}

fn valid_dm(y: Option<i64>, m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y.unwrap_or(2000), m)
}

fn parse(toks: &[(TokKind, &str)], lang: Language) -> Option<Parsed> {
    let mut nums: Vec<usize> = Vec::new();
    let mut months: Vec<(usize, MonthWord)> = Vec::new();
    for (i, (k, t)) in toks.iter().enumerate() {
        match k {
            TokKind::Num => {
                if t.len() > 4 {
                    return None;
                }
                nums.push(i)
            }
            TokKind::Word => {
                if let Some(m) = month_word(t, lang) {
                    months.push((i, m));
                } else if is_filler(t) || (i > 0 && toks[i - 1].0 == TokKind::Num && is_ordinal_suffix(t)) {
                } else {
                    return None;
                }
            }
            TokKind::Other => {}
        }
    }
    let day_first = lang != Language::En;
    let t = |i: usize| toks[i].1;
    let mut p = Parsed { roles: Vec::new(), month_word: None, year: None, month: None, day: None };
    match *months.as_slice() {
        [] => match *nums.as_slice() {
            [a, b, c] => {
                if t(a).len() == 4 {
                    let (y, m, d) = (year_value(t(a))?, small(t(b))?, small(t(c))?);
                    if !valid_dm(Some(y), m, d) {
                        return None;
                    }
                    p.roles = vec![(a, Role::Year), (b, Role::Month), (c, Role::Day)];
                    (p.year, p.month, p.day) = (Some(y), Some(m), Some(d));
                } else {
                    let y = year_value(t(c))?;
                    let (x1, x2) = (small(t(a))?, small(t(b))?);
                    let dm = valid_dm(Some(y), x2, x1);
                    let md = valid_dm(Some(y), x1, x2);
                    let use_dm = if day_first { dm } else { dm && !md };
                    if use_dm {
                        p.roles = vec![(a, Role::Day), (b, Role::Month), (c, Role::Year)];
                        (p.year, p.month, p.day) = (Some(y), Some(x2), Some(x1));
                    } else if md {
                        p.roles = vec![(a, Role::Month), (b, Role::Day), (c, Role::Year)];
                        (p.year, p.month, p.day) = (Some(y), Some(x1), Some(x2));
                    } else {
                        return None;
                    }
                }
            }
            [a, b] => {
                if t(a).len() == 4 {
                    let (y, m) = (year_value(t(a))?, small(t(b))?);
                    if !(1..=12).contains(&m) {
                        return None;
                    }
                    p.roles = vec![(a, Role::Year), (b, Role::Month)];
                    (p.year, p.month) = (Some(y), Some(m));
                } else if t(b).len() == 4 {
                    let (m, y) = (small(t(a))?, year_value(t(b))?);
                    if !(1..=12).contains(&m) {
                        return None;
                    }
                    p.roles = vec![(a, Role::Month), (b, Role::Year)];
                    (p.year, p.month) = (Some(y), Some(m));
                } else {
                    let (x1, x2) = (small(t(a))?, small(t(b))?);
                    let (d, m, dm_roles) = if day_first { (x1, x2, true) } else { (x2, x1, false) };
                    if valid_dm(None, m, d) {
                        p.roles = if dm_roles {
                            vec![(a, Role::Day), (b, Role::Month)]
                        } else {
                            vec![(a, Role::Month), (b, Role::Day)]
                        };
                        (p.month, p.day) = (Some(m), Some(d));
                    } else if (1..=12).contains(&x1) && t(b).len() == 2 {
                        // "12/99": month and two-digit year.
                        p.roles = vec![(a, Role::Month), (b, Role::Year)];
                        (p.year, p.month) = (year_value(t(b)), Some(x1));
                    } else {
                        return None;
                    }
                }
            }
            [a] => {
                if t(a).len() != 4 {
                    return None;
                }
                p.roles = vec![(a, Role::Year)];
                p.year = Some(year_value(t(a))?);
            }
            _ => return None,
        },
        [(mi, mw)] => {
            p.month_word = Some((mi, mw));
            p.month = Some(mw.month);
            let before: Vec<usize> = nums.iter().copied().filter(|&i| i < mi).collect();
            let after: Vec<usize> = nums.iter().copied().filter(|&i| i > mi).collect();
            match *before.as_slice() {
                [] => {}
                [d] => {
                    p.day = Some(small(t(d))?);
                    p.roles.push((d, Role::Day));
                }
                _ => return None,
            }
            match *after.as_slice() {
                [] => {}
                [x] => {
                    let tx = t(x);
                    let as_day = p.day.is_none() && (tx.len() == 1 || (tx.len() == 2 && lang == Language::En));
                    if as_day {
                        p.day = Some(small(tx)?);
                        p.roles.push((x, Role::Day));
                    } else {
                        p.year = Some(year_value(tx)?);
                        p.roles.push((x, Role::Year));
                    }
                }
                [d, y] if p.day.is_none() => {
                    p.day = Some(small(t(d))?);
                    p.year = Some(year_value(t(y))?);
                    p.roles.push((d, Role::Day));
                    p.roles.push((y, Role::Year));
                }
                _ => return None,
            }
            if let Some(d) = p.day {
                if !valid_dm(p.year, mw.month, d) {
                    return None;
                }
            }
        }
        _ => return None,
    }
    Some(p)
}

/// A day or month number in the original's width. Beside a month name (`28. Februar`, `12 de agosto`) a
/// two-digit day is only padded when the original was (`02. März`), since `28` says nothing about padding.
fn write_num(orig: &str, v: i64, textual: bool) -> String {
    if orig.len() >= 2 && (!textual || orig.starts_with('0')) {
        format!("{v:0width$}", width = orig.len())
    } else {
        v.to_string()
    }
}

/// Shifts a written date by `offset_days` and writes it in the original's format; `None` if the string is
/// not a date this parser understands (or the shifted year would not fit its written width).
pub fn shift_date(s: &str, offset_days: i64, lang: Language) -> Option<String> {
    let toks = tokenize(s);
    let p = parse(&toks, lang)?;
    // Anchor, shift, and read the new fields.
    let (ny, nm, nd) = match (p.year, p.month, p.day) {
        (Some(y), Some(m), Some(d)) => civil_from_days(days_from_civil(y, m, d) + offset_days),
        (None, Some(m), Some(d)) => civil_from_days(days_from_civil(2000, m, d) + offset_days),
        (y, Some(m), None) => civil_from_days(days_from_civil(y.unwrap_or(2000), m, 15) + offset_days),
        (Some(y), None, None) => civil_from_days(days_from_civil(y, 7, 2) + offset_days),
        _ => return None,
    };
    let mut out: Vec<String> = toks.iter().map(|(_, t)| t.to_string()).collect();
    for &(i, role) in &p.roles {
        let orig = toks[i].1;
        out[i] = match role {
            Role::Day => write_num(orig, nd as i64, p.month_word.is_some()),
            Role::Month => write_num(orig, nm as i64, p.month_word.is_some()),
            Role::Year => {
                if orig.len() == 2 {
                    format!("{:02}", ny.rem_euclid(100))
                } else {
                    if !(1000..=9999).contains(&ny) {
                        return None;
                    }
                    format!("{ny:04}")
                }
            }
        };
    }
    if let Some((i, mw)) = p.month_word {
        out[i] = month_name(mw, nm);
    }
    Some(out.concat())
}

/// For dates the parser does not understand: four-digit years (1800–2200) move by the offset's whole years
/// plus `extra_years` (never by zero), month names rotate by a fixed non-zero number of months, other
/// digits go to the caller's random replacement.
pub(crate) fn soft_shift(
    s: &str,
    offset_days: i64,
    extra_years: i64,
    lang: Language,
    mut other_digits: impl FnMut(&str) -> String,
) -> String {
    let years = {
        let y = (offset_days as f64 / 365.25).round() as i64 + extra_years;
        if y == 0 {
            1
        } else {
            y
        }
    };
    let rot = 1 + (offset_days.unsigned_abs() / 31 % 11) as u32;
    tokenize(s)
        .into_iter()
        .map(|(k, t)| match k {
            TokKind::Num => match t.parse::<i64>() {
                Ok(v) if t.len() == 4 && (1800..=2200).contains(&v) => format!("{:04}", v + years),
                _ => other_digits(t),
            },
            TokKind::Word => match month_word(t, lang) {
                Some(mw) => month_name(mw, (mw.month - 1 + rot) % 12 + 1),
                None => t.to_string(),
            },
            TokKind::Other => t.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for z in -800_000..800_000i64 {
            if z % 997 != 0 {
                continue;
            }
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2016, 3, 1) - days_from_civil(2016, 2, 28), 2);
        assert_eq!(days_from_civil(2015, 3, 1) - days_from_civil(2015, 2, 28), 1);
    }

    #[test]
    fn formats_are_kept() {
        let es = Language::Es;
        assert_eq!(shift_date("03/03/2015", 10, es).unwrap(), "13/03/2015");
        assert_eq!(shift_date("3/3/15", 10, es).unwrap(), "13/3/15");
        assert_eq!(shift_date("28/02/2016", 1, es).unwrap(), "29/02/2016");
        assert_eq!(shift_date("28/02/2015", 1, es).unwrap(), "01/03/2015");
        assert_eq!(shift_date("3 de marzo de 2015", 30, es).unwrap(), "2 de abril de 2015");
        assert_eq!(shift_date("Marzo de 2015", 30, es).unwrap(), "Abril de 2015");
        assert_eq!(shift_date("MARZO DEL 2015", 400, es).unwrap(), "ABRIL DEL 2016");
        assert_eq!(shift_date("2015", 400, es).unwrap(), "2016");
        assert_eq!(shift_date("2015-03-03", -3, es).unwrap(), "2015-02-28");
        assert_eq!(shift_date("dic-99", 31, es).unwrap(), "ene-00");
        assert_eq!(shift_date("marzo", 31, es).unwrap(), "abril");
        assert_eq!(shift_date("12 de agosto", 1, es).unwrap(), "13 de agosto");
        assert_eq!(shift_date("March 3, 2015", 1, Language::En).unwrap(), "March 4, 2015");
        assert_eq!(shift_date("03/12/2015", 1, Language::En).unwrap(), "03/13/2015");
        assert_eq!(shift_date("3 mars 2015", 31, Language::Sv).unwrap(), "3 april 2015");
        assert_eq!(shift_date("10/2015", 31, es).unwrap(), "11/2015");
        assert!(shift_date("verano de 2015", 10, es).is_none());
        assert!(shift_date("febrero y abril de 2015", 10, es).is_none());
        assert!(shift_date("31/02/2015", 1, es).is_none());
        assert!(shift_date("99/999/9999", 1, es).is_none());
        assert_eq!(shift_date("27/011/2014", 1, es).unwrap(), "28/011/2014");
        assert!(shift_date("Colombia", 1, es).is_none());
    }

    #[test]
    fn soft_shift_changes_years_and_months() {
        let s = soft_shift("verano de 2015", 400, 0, Language::Es, |t| t.to_string());
        assert_eq!(s, "verano de 2016");
        assert_eq!(soft_shift("verano de 2015", 400, -1, Language::Es, |t| t.to_string()), "verano de 2016");
        assert_eq!(soft_shift("verano de 2015", 400, 1, Language::Es, |t| t.to_string()), "verano de 2017");
        let s = soft_shift("febrero y abril de 2015", -800, 0, Language::Es, |t| t.to_string());
        assert!(s.ends_with("de 2013") && !s.starts_with("febrero"));
    }
}
