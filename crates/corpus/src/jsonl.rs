//! JSONL: one document a line, `{"id": "...", "text": "...", "spans": [{"start", "end", "label"}]}`.

use crate::format::{check_id, Loaded, ReadOptions};
use crate::validate::{check_span_offsets, resolve_overlaps};
use crate::{CorpusError, Document, OverlapPolicy, Result, Span};
use fsutil::atomic_write;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// One line as read: unknown keys are refused, so a misspelt `"span"` or `"lable"` is an error,
/// not a document whose PHI silently loses its annotation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: String,
    text: String,
    #[serde(default)]
    spans: Vec<LineSpan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineSpan {
    start: usize,
    end: usize,
    label: String,
}

pub fn read_file(path: &Path, options: &ReadOptions) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| CorpusError::io(path, e))?;
    let content = crate::format::decode_utf8(path, bytes)?;
    let mut loaded = Loaded::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in content.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |m: String| CorpusError::new(path, Some(line_no), m);
        let parsed: Line = serde_json::from_str(line).map_err(|e| {
            err(format!(
                "not a document ({}, column {}): expected {{\"id\": ..., \"text\": ..., \"spans\": [{{\"start\", \"end\", \"label\"}}]}}",
                strip_excerpt(&e),
                e.column()
            ))
        })?;
        let spans = parsed.spans.into_iter().map(|s| Span::new(s.start, s.end, s.label)).collect();
        let mut doc = Document { id: parsed.id, text: parsed.text, spans };
        check_id(path, Some(line_no), &doc.id)?;
        if let Some(first) = seen.insert(doc.id.clone(), line_no) {
            return Err(err(format!("document id {:?} already used on line {first}; ids must be unique", doc.id)));
        }
        let n = doc.char_len();
        for s in &doc.spans {
            if let Some(warning) = check_span_offsets(s, n, options.offsets_only).map_err(err)? {
                loaded.warnings.push(err(warning));
            }
        }
        for (_, msg) in resolve_overlaps(&mut doc, options.overlaps) {
            match options.overlaps {
                OverlapPolicy::Error => return Err(err(msg)),
                OverlapPolicy::KeepFirst | OverlapPolicy::Allow => loaded.warnings.push(err(msg)),
            }
        }
        loaded.documents.push(doc);
    }
    Ok(loaded)
}

/// serde_json's messages can quote input; keep only the category so no text leaks.
pub(crate) fn strip_excerpt(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax => "invalid JSON".into(),
        Category::Eof => "the line ends inside a JSON value".into(),
        Category::Data => {
            let m = e.to_string();
            // Keep messages about fields ("missing field `spans`") which name no document text.
            let head = m.split(" at line ").next().unwrap_or_default();
            if ["missing field", "unknown field", "duplicate field"].iter().any(|k| head.starts_with(k)) {
                head.to_string()
            } else {
                "a field has the wrong type or value".into()
            }
        }
        Category::Io => "I/O error".into(),
    }
}

pub fn write_file(path: &Path, docs: &[Document]) -> Result<()> {
    let mut out = String::new();
    for d in docs {
        out.push_str(&serde_json::to_string(d).expect("documents serialize"));
        out.push('\n');
    }
    Ok(atomic_write(path, out.as_bytes())?)
}
