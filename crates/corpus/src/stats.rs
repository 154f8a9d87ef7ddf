//! Corpus statistics, including the two alignment checks a tagger depends on: spans that do not
//! start and end on word-token boundaries (a tagger cannot predict them exactly) and spans that a
//! sentence boundary cuts.

use crate::{split_sentences, tokenize, Document};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where a span sits badly: document id and span offsets (never the text).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SpanRef {
    pub document: String,
    pub label: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub documents: usize,
    pub characters: usize,
    pub tokens: usize,
    pub sentences: usize,
    pub spans: usize,
    pub documents_with_bom: usize,
    pub spans_per_label: BTreeMap<String, usize>,
    /// Spans whose start or end falls inside a word token.
    pub spans_not_token_aligned: Vec<SpanRef>,
    /// Spans that a sentence boundary cuts in two.
    pub spans_cut_by_sentences: Vec<SpanRef>,
}

pub fn stats(docs: &[Document]) -> Stats {
    let mut s = Stats { documents: docs.len(), ..Default::default() };
    for d in docs {
        let tokens = tokenize(&d.text);
        let sentences = split_sentences(&d.text);
        s.characters += d.char_len();
        s.tokens += tokens.len();
        s.sentences += sentences.len();
        s.spans += d.spans.len();
        s.documents_with_bom += d.text.starts_with('\u{feff}') as usize;
        let starts: std::collections::HashSet<usize> = tokens.iter().map(|t| t.start).collect();
        let ends: std::collections::HashSet<usize> = tokens.iter().map(|t| t.end).collect();
        for sp in &d.spans {
            *s.spans_per_label.entry(sp.label.clone()).or_default() += 1;
            let r = || SpanRef { document: d.id.clone(), label: sp.label.clone(), start: sp.start, end: sp.end };
            if !starts.contains(&sp.start) || !ends.contains(&sp.end) {
                s.spans_not_token_aligned.push(r());
            }
            // Cut: the span starts in one sentence and ends after it.
            if sentences.iter().any(|&(a, b)| sp.start < b && sp.end > b && sp.start >= a) {
                s.spans_cut_by_sentences.push(r());
            }
        }
    }
    s
}
