use thiserror::Error;

/// Errors never quote document text: only ids, offsets and labels.
#[derive(Debug, Error)]
pub enum DeidError {
    #[error("document {doc:?}: span {start}..{end} ({label}) is outside the text ({len} chars)")]
    SpanOutOfRange { doc: String, start: usize, end: usize, label: String, len: usize },
    #[error("document {doc:?}: span {start}..{end} ({label}) is empty or reversed")]
    EmptySpan { doc: String, start: usize, end: usize, label: String },
    #[error(
        "document {doc:?}: spans {a_start}..{a_end} ({a_label}) and {b_start}..{b_end} ({b_label}) overlap \
         (use OverlapPolicy::Merge to merge them)"
    )]
    Overlap {
        doc: String,
        a_start: usize,
        a_end: usize,
        a_label: String,
        b_start: usize,
        b_end: usize,
        b_label: String,
    },
    #[error("label map: {0}")]
    LabelMap(String),
    #[error("{0}")]
    Invalid(String),
}
