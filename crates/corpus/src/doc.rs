use serde::{Deserialize, Serialize};

/// A PHI mention: `[start, end)` in characters of its document's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub label: String,
}

impl Span {
    pub fn new(start: usize, end: usize, label: impl Into<String>) -> Self {
        Span { start, end, label: label.into() }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A document: an id (file stem or JSONL `id`), its full text, and its PHI spans sorted by
/// `(start, end, label)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub spans: Vec<Span>,
}

/// What to do when two spans of one document overlap. BIO tagging cannot hold both, and the
/// MEDDOCAN guidelines forbid it, so the default is to stop with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Stop with an error naming both spans (the default).
    #[default]
    Error,
    /// Keep the earlier (then longer) span, drop the other, and report every dropped span as a warning.
    KeepFirst,
    /// Keep every span, overlapping or duplicated. For scoring only (the scorer compares sets, as
    /// the official MEDDOCAN script does); training needs one of the other two.
    Allow,
}

impl Document {
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Document { id: id.into(), text: text.into(), spans: Vec::new() }
    }

    /// Number of characters of the text.
    pub fn char_len(&self) -> usize {
        self.text.chars().count()
    }

    /// Text of `[start, end)` in characters. Panics if out of range: validate first.
    pub fn slice(&self, start: usize, end: usize) -> &str {
        CharIndex::new(&self.text).slice(&self.text, start, end)
    }

    pub fn sort_spans(&mut self) {
        self.spans.sort();
    }
}

/// Maps character offsets to byte offsets of one text in O(1) after an O(n) build.
#[derive(Debug, Clone)]
pub struct CharIndex {
    /// `bytes[i]` = byte offset of char `i`; one extra entry for the end.
    bytes: Vec<usize>,
}

impl CharIndex {
    pub fn new(text: &str) -> Self {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        CharIndex { bytes }
    }
    /// Number of chars in the text.
    pub fn len(&self) -> usize {
        self.bytes.len() - 1
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn byte(&self, char_offset: usize) -> usize {
        self.bytes[char_offset]
    }
    /// Char offset of a byte offset that lies on a char boundary.
    pub fn char_of_byte(&self, byte: usize) -> usize {
        self.bytes.binary_search(&byte).expect("byte offset on a char boundary")
    }
    pub fn slice<'a>(&self, text: &'a str, start: usize, end: usize) -> &'a str {
        &text[self.bytes[start]..self.bytes[end]]
    }
}
