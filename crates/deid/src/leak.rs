//! Leakage: do original PHI strings still appear, verbatim, in de-identified (or synthetic) text?
//!
//! Matching is exact (case-sensitive) and on word boundaries: an occurrence counts only when the characters
//! just before and after it are not letters or digits (for a string that begins or ends with a letter or
//! digit). Without the boundary rule, short PHI strings ("H", "M", "12") would be found inside every word and
//! number and the measure would say nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use aho_corasick::AhoCorasick;
use corpus::{CharIndex, Document};
use serde::{Deserialize, Serialize};

use crate::error::DeidError;
use crate::text::bounded_at;

/// The distinct PHI strings of a set of documents, with the labels each one was annotated with.
fn phi_strings(docs: &[Document]) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in docs {
        let idx = CharIndex::new(&d.text);
        for s in &d.spans {
            if s.start >= s.end || s.end > idx.len() {
                continue;
            }
            let t = idx.slice(&d.text, s.start, s.end);
            if t.trim().is_empty() {
                continue;
            }
            m.entry(t.to_string()).or_default().insert(s.label.clone());
        }
    }
    m
}

/// Per label: how many distinct original PHI strings of `originals` occur verbatim (on word boundaries)
/// anywhere in the texts of `outputs` (any document). Every label of the originals is in the map, with 0
/// when nothing leaked. A string annotated with several labels counts once under each.
///
/// This is the corpus-wide measure (e.g. training-set PHI found in a synthetic corpus). It also counts
/// coincidences: a surrogate date or a common town name that happens to equal some original elsewhere.
/// For "did replacement remove each document's own PHI", use [`leak_report`].
pub fn leaked_strings(originals: &[Document], outputs: &[Document]) -> BTreeMap<String, usize> {
    let strings = phi_strings(originals);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for labels in strings.values() {
        for l in labels {
            counts.entry(l.clone()).or_default();
        }
    }
    if strings.is_empty() {
        return counts;
    }
    let pats: Vec<&str> = strings.keys().map(String::as_str).collect();
    let ac = AhoCorasick::new(&pats).expect("automaton of PHI strings");
    let mut found: HashSet<usize> = HashSet::new();
    for d in outputs {
        for m in ac.find_overlapping_iter(&d.text) {
            let id = m.pattern().as_usize();
            if found.contains(&id) {
                continue;
            }
            let p = pats[id];
            let (first, last) = (p.chars().next().unwrap_or(' '), p.chars().next_back().unwrap_or(' '));
            if bounded_at(&d.text, first, last, m.start(), m.end()) {
                found.insert(id);
            }
        }
    }
    for id in found {
        for l in &strings[pats[id]] {
            *counts.entry(l.clone()).or_default() += 1;
        }
    }
    counts
}

/// Per-label leakage of each document's own PHI into its own de-identified version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakRow {
    /// Distinct (document, string) pairs of this label.
    pub distinct: usize,
    /// Pairs whose string occurs anywhere in the document's output.
    pub leaked: usize,
    /// Pairs whose string occurs inside a replacement (a new span's text): the replacement itself carries
    /// it. For kept values (sex, kinship words) this is by design; for everything else it is a real leak
    /// or a coincidence of computed values (a shifted date equal to another date of the document).
    pub via_replacement: usize,
    /// Pairs whose string occurs in the output only outside replacements, i.e. in text that was never
    /// annotated (the same string also stands un-annotated in the original): a recall problem of the
    /// spans, not of the replacement.
    pub outside_only: usize,
}

/// Per label, for each document and its de-identified version (same order, same ids), which of the
/// document's PHI strings still occur in its output, split by where they occur (see [`LeakRow`]).
pub fn leak_report(originals: &[Document], outputs: &[Document]) -> Result<BTreeMap<String, LeakRow>, DeidError> {
    if originals.len() != outputs.len() {
        return Err(DeidError::Invalid(format!(
            "leak report needs one output per original ({} originals, {} outputs)",
            originals.len(),
            outputs.len()
        )));
    }
    let mut rows: BTreeMap<String, LeakRow> = BTreeMap::new();
    for (o, n) in originals.iter().zip(outputs) {
        if o.id != n.id {
            return Err(DeidError::Invalid(format!("leak report: document {:?} is paired with {:?}", o.id, n.id)));
        }
        let oi = CharIndex::new(&o.text);
        // Byte ranges of the new spans in the output.
        let ni = CharIndex::new(&n.text);
        let new_ranges: Vec<(usize, usize)> = n
            .spans
            .iter()
            .filter(|s| s.end <= ni.len() && s.start <= s.end)
            .map(|s| (ni.byte(s.start), ni.byte(s.end)))
            .collect();
        let mut seen: HashMap<(&str, &str), ()> = HashMap::new();
        for s in &o.spans {
            if s.start >= s.end || s.end > oi.len() {
                continue;
            }
            let t = oi.slice(&o.text, s.start, s.end);
            if t.trim().is_empty() || seen.insert((s.label.as_str(), t), ()).is_some() {
                continue;
            }
            let row = rows.entry(s.label.clone()).or_default();
            row.distinct += 1;
            let (first, last) = (t.chars().next().unwrap_or(' '), t.chars().next_back().unwrap_or(' '));
            let mut inside = false;
            let mut outside = false;
            for (b, m) in n.text.match_indices(t) {
                let e = b + m.len();
                if !bounded_at(&n.text, first, last, b, e) {
                    continue;
                }
                if new_ranges.iter().any(|&(rs, re)| rs <= b && e <= re) {
                    inside = true;
                } else {
                    outside = true;
                }
            }
            if inside || outside {
                row.leaked += 1;
            }
            if inside {
                row.via_replacement += 1;
            } else if outside {
                row.outside_only += 1;
            }
        }
    }
    Ok(rows)
}
