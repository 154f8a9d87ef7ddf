//! Re-identification check: a synthetic note that repeats one training patient's own PHI strings
//! *together* (a name with a date and a place of that one note) links back to the patient even when
//! each string alone is common enough to say nothing.

use crate::leak::matches_on_word_boundaries;
use aho_corasick::{AhoCorasick, MatchKind};
use corpus::Document;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reidentification {
    pub training_documents: usize,
    /// Training documents with at least one PHI string found in no other training document.
    pub with_own_phi: usize,
    /// Training documents two (three) or more of whose own PHI strings occur together in one
    /// synthetic document.
    pub linked_2: usize,
    pub linked_3: usize,
    /// The largest number of one training document's own PHI strings found in one synthetic one.
    pub max_linked: usize,
}

/// For each training document, its own PHI strings (surface strings that are PHI in it and in no
/// other training document, of any label) and the most of them any one synthetic document holds.
pub fn reidentification(training: &[Document], synthetic: &[Document]) -> Reidentification {
    let mut owners: HashMap<String, HashSet<usize>> = HashMap::new();
    for (di, d) in training.iter().enumerate() {
        let chars: Vec<char> = d.text.chars().collect();
        for s in &d.spans {
            if s.end <= chars.len() && s.end > s.start {
                owners.entry(chars[s.start..s.end].iter().collect()).or_default().insert(di);
            }
        }
    }
    // Own strings, each with its one owner.
    let mut own: Vec<(String, usize)> = owners.into_iter().filter(|(_, o)| o.len() == 1).map(|(s, o)| (s, *o.iter().next().expect("one owner"))).collect();
    own.sort();
    let mut report = Reidentification { training_documents: training.len(), ..Default::default() };
    report.with_own_phi = own.iter().map(|(_, o)| *o).collect::<HashSet<_>>().len();
    if own.is_empty() {
        return report;
    }
    let ac = AhoCorasick::builder().match_kind(MatchKind::Standard).build(own.iter().map(|(s, _)| s)).expect("PHI strings build an automaton");
    let mut best = vec![0usize; training.len()];
    for d in synthetic {
        let found: HashSet<usize> = matches_on_word_boundaries(&ac, &d.text).collect();
        let mut per_owner: HashMap<usize, usize> = HashMap::new();
        for p in found {
            *per_owner.entry(own[p].1).or_default() += 1;
        }
        for (o, n) in per_owner {
            best[o] = best[o].max(n);
        }
    }
    report.linked_2 = best.iter().filter(|&&n| n >= 2).count();
    report.linked_3 = best.iter().filter(|&&n| n >= 3).count();
    report.max_linked = best.iter().copied().max().unwrap_or(0);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use corpus::Span;

    fn doc(id: &str, text: &str, phi: &[&str]) -> Document {
        let spans = phi
            .iter()
            .map(|p| {
                let start = text.find(p).unwrap();
                let start = text[..start].chars().count();
                Span { start, end: start + p.chars().count(), label: "X".into() }
            })
            .collect();
        Document { id: id.into(), text: text.into(), spans }
    }

    #[test]
    fn own_strings_found_together_link_a_document() {
        let training = [
            doc("a", "Nombre: Ana Ruiz. Fecha: 3/4/2001. Madrid.", &["Ana Ruiz", "3/4/2001", "Madrid"]),
            doc("b", "Nombre: Luis Gil. Fecha: 9/9/1999. Madrid.", &["Luis Gil", "9/9/1999", "Madrid"]),
        ];
        // `Madrid` belongs to both: never an own string. One synthetic note holds two of a's own strings.
        let synthetic = [
            Document { id: "s1".into(), text: "Ana Ruiz vino el 3/4/2001 desde Madrid.".into(), spans: vec![] },
            Document { id: "s2".into(), text: "Luis Gilberto vino. 9/9/1999.".into(), spans: vec![] },
        ];
        let r = reidentification(&training, &synthetic);
        assert_eq!((r.training_documents, r.with_own_phi, r.linked_2, r.linked_3, r.max_linked), (2, 2, 1, 0, 2));
    }
}
