//! Known-answer cases for every metric (`known`) and seeded random comparisons with deliberately
//! naive reference implementations (`random`).

mod known;
mod random;

use corpus::{Document, Span};

use crate::{Counts, MetricReport};

pub(crate) fn doc(id: &str, text: &str, spans: &[(usize, usize, &str)]) -> Document {
    let mut d = Document::new(id, text);
    d.spans = spans.iter().map(|&(s, e, l)| Span::new(s, e, l)).collect();
    d
}

pub(crate) fn counts(m: &MetricReport) -> (usize, usize, usize) {
    (m.micro.tp, m.micro.fp, m.micro.fn_)
}

pub(crate) fn label_counts(m: &MetricReport, label: &str) -> Counts {
    m.per_label.get(label).unwrap_or_else(|| panic!("no label {label} in {:?}", m.per_label.keys())).counts()
}

pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}
