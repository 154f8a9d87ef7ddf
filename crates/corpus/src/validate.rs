//! Span checks shared by every reader. Messages name the problem without quoting document text
//! (it may be PHI); the caller adds file and line.

use crate::{Document, OverlapPolicy, Span};

/// Checks one span against a text of `text_chars` characters.
pub fn check_span(span: &Span, text_chars: usize) -> Result<(), String> {
    if span.label.is_empty() || span.label.chars().any(char::is_whitespace) {
        return Err(format!(
            "span {}..{} has label {:?}: a label must be one non-empty word without spaces",
            span.start, span.end, span.label
        ));
    }
    if span.start >= span.end {
        return Err(format!(
            "span {} {}..{} is empty or reversed: start must be smaller than end",
            span.label, span.start, span.end
        ));
    }
    if span.end > text_chars {
        return Err(format!(
            "span {} {}..{} ends after the text, which has {} characters (offsets count Unicode characters, a BOM included)",
            span.label, span.start, span.end, text_chars
        ));
    }
    Ok(())
}

/// [`check_span`], or with `offsets_only` (scoring, see [`crate::ReadOptions::offsets_only`]) a span
/// whose only fault is its range as a warning (`Ok(Some(message))`): the scorer reads its offsets as
/// they are. A bad label stays an error.
pub fn check_span_offsets(span: &Span, text_chars: usize, offsets_only: bool) -> Result<Option<String>, String> {
    match check_span(span, text_chars) {
        Ok(()) => Ok(None),
        Err(m) if offsets_only && !span.label.is_empty() && !span.label.chars().any(char::is_whitespace) => {
            Ok(Some(format!("{m}; scored by its offsets, as the official MEDDOCAN script does")))
        }
        Err(m) => Err(m),
    }
}

/// Sorts spans and applies the overlap policy. Returns `(index into the sorted spans of the
/// offending span, message)` for every conflict: with `Error` the caller fails on the first one,
/// with `KeepFirst` the offending spans are removed and the messages become warnings.
pub fn resolve_overlaps(doc: &mut Document, policy: OverlapPolicy) -> Vec<(Span, String)> {
    if policy == OverlapPolicy::Allow {
        doc.spans.sort();
        return Vec::new();
    }
    // Earlier start first; at equal starts the longer span first, so KeepFirst keeps the longest.
    doc.spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(a.label.cmp(&b.label)));
    let mut kept: Vec<Span> = Vec::with_capacity(doc.spans.len());
    let mut conflicts = Vec::new();
    for span in std::mem::take(&mut doc.spans) {
        if let Some(prev) = kept.last() {
            if prev.overlaps(&span) {
                let what = if prev.start == span.start && prev.end == span.end {
                    if prev.label == span.label { "is a duplicate of" } else { "has the same offsets as" }
                } else {
                    "overlaps"
                };
                conflicts.push((
                    span.clone(),
                    format!(
                        "span {} {}..{} {} span {} {}..{}; BIO tagging cannot hold overlapping spans ({})",
                        span.label,
                        span.start,
                        span.end,
                        what,
                        prev.label,
                        prev.start,
                        prev.end,
                        match policy {
                            OverlapPolicy::Error => "fix the annotation, or pass --overlaps keep-first to keep the earlier, longer span",
                            OverlapPolicy::KeepFirst => "dropped it, kept the earlier, longer span",
                            OverlapPolicy::Allow => unreachable!("Allow returns early"),
                        }
                    ),
                ));
                continue;
            }
        }
        kept.push(span);
    }
    kept.sort();
    doc.spans = kept;
    conflicts
}
