//! CoNLL/BIO: `token<TAB>tag` lines, a blank line between sentences, and `# doc_id = ID` before
//! each document. Export uses the project's tokenizer and sentence splitter; import rebuilds each
//! text from its tokens (single spaces between tokens, one sentence a line), so import after
//! export keeps tokens and labels but not the original spacing.

use crate::format::{Loaded, ReadOptions};
use crate::{split_sentences, tokenize, CorpusError, Document, Result, Span};
use fsutil::atomic_write;
use std::path::Path;

/// BIO tags of a document's tokens: a token is tagged with the span it overlaps. A span whose
/// boundary falls inside a token (a gold annotation error such as `una niet|a`) is widened to
/// whole tokens, and a message for it is returned, so the caller can say so.
pub fn bio_tags(doc: &Document, tokens: &[crate::Token]) -> (Vec<String>, Vec<String>) {
    let mut tags = vec!["O".to_string(); tokens.len()];
    let mut widened = Vec::new();
    for s in &doc.spans {
        let covered: Vec<usize> = (0..tokens.len()).filter(|&i| tokens[i].start < s.end && s.start < tokens[i].end).collect();
        let (Some(&f), Some(&l)) = (covered.first(), covered.last()) else { continue };
        if tokens[f].start != s.start || tokens[l].end != s.end {
            widened.push(format!(
                "document {}: span {} {}..{} does not start and end on word-token boundaries; BIO widened it to {}..{}",
                doc.id, s.label, s.start, s.end, tokens[f].start, tokens[l].end
            ));
        }
        if tags[f..=l].iter().any(|t| t != "O") {
            continue; // two spans inside one token: the first keeps it
        }
        tags[f] = format!("B-{}", s.label);
        for t in &mut tags[f + 1..=l] {
            *t = format!("I-{}", s.label);
        }
    }
    (tags, widened)
}

/// Writes the CoNLL file; returns one warning per span that had to be widened to whole tokens.
pub fn write_file(path: &Path, docs: &[Document]) -> Result<Vec<CorpusError>> {
    let mut out = String::new();
    let mut warnings = Vec::new();
    for doc in docs {
        let chars: Vec<char> = doc.text.chars().collect();
        let tokens = tokenize(&doc.text);
        let (tags, widened) = bio_tags(doc, &tokens);
        warnings.extend(widened.into_iter().map(|m| CorpusError::new(path, None, m)));
        out.push_str(&format!("# doc_id = {}\n", doc.id));
        let mut t = 0;
        for (s_start, s_end) in split_sentences(&doc.text) {
            while t < tokens.len() && tokens[t].start < s_start {
                t += 1;
            }
            let mut any = false;
            while t < tokens.len() && tokens[t].end <= s_end {
                let word: String = chars[tokens[t].start..tokens[t].end].iter().collect();
                out.push_str(&word);
                out.push('\t');
                out.push_str(&tags[t]);
                out.push('\n');
                t += 1;
                any = true;
            }
            if any {
                out.push('\n');
            }
        }
    }
    atomic_write(path, out.as_bytes())?;
    Ok(warnings)
}

pub fn read_file(path: &Path, _options: &ReadOptions) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| CorpusError::io(path, e))?;
    let content = crate::format::decode_utf8(path, bytes)?;
    let mut docs: Vec<Document> = Vec::new();
    let mut doc_count = 0;
    // Open entity: (label, start char) in the document being built.
    let mut open: Option<(String, usize)> = None;
    let mut sentence_has_tokens = false;
    let close = |doc: &mut Document, open: &mut Option<(String, usize)>, end: usize| {
        if let Some((label, start)) = open.take() {
            doc.spans.push(Span::new(start, end, label));
        }
    };
    let mut last_end = 0usize;
    for (i, line) in content.lines().enumerate() {
        let line_no = i + 1;
        let err = |m: String| CorpusError::new(path, Some(line_no), m);
        if let Some(id) = line.strip_prefix("# doc_id = ") {
            if let Some(doc) = docs.last_mut() {
                close(doc, &mut open, last_end);
            }
            crate::format::check_id(path, Some(line_no), id.trim())?;
            docs.push(Document::new(id.trim(), ""));
            sentence_has_tokens = false;
            continue;
        }
        if line.starts_with("-DOCSTART-") {
            if let Some(doc) = docs.last_mut() {
                close(doc, &mut open, last_end);
            }
            doc_count += 1;
            docs.push(Document::new(format!("doc{doc_count:05}"), ""));
            sentence_has_tokens = false;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if docs.is_empty() {
            doc_count += 1;
            docs.push(Document::new(format!("doc{doc_count:05}"), ""));
        }
        let doc = docs.last_mut().expect("a document is open");
        if line.trim().is_empty() {
            if sentence_has_tokens {
                close(doc, &mut open, last_end);
                doc.text.push('\n');
                sentence_has_tokens = false;
            }
            continue;
        }
        // Exactly two columns, token and tag: by tabs where the line has one (a token may then hold a
        // space), else by spaces. A third column is never dropped silently (it could be part of the token).
        let cols: Vec<&str> = if line.contains('\t') {
            line.split('\t').collect()
        } else {
            line.split(' ').filter(|c| !c.is_empty()).collect()
        };
        let [word, tag] = cols[..] else {
            let sep = if line.contains('\t') { "tab-separated " } else { "" };
            return Err(err(format!(
                "expected `token TAB tag`, found {} {sep}column(s); keep only the token and the tag column (for a multi-column file such as CoNLL-2003: `awk '{{print $1\"\\t\"$NF}}'`)",
                cols.len()
            )));
        };
        let (word, tag) = (word.trim().to_string(), tag.trim());
        if word.is_empty() || tag.is_empty() {
            return Err(err("expected `token TAB tag`: the token or the tag is empty".into()));
        }
        if sentence_has_tokens {
            doc.text.push(' ');
        }
        let start = doc.text.chars().count();
        doc.text.push_str(&word);
        let end = start + word.chars().count();
        let (kind, label) = match tag {
            "O" => ("O", ""),
            t if t.len() > 2 && (t.starts_with("B-") || t.starts_with("I-")) => (&t[..1], &t[2..]),
            t => return Err(err(format!("tag {t:?} is not O, B-LABEL or I-LABEL"))),
        };
        match kind {
            "O" => close(doc, &mut open, last_end),
            "B" => {
                close(doc, &mut open, last_end);
                open = Some((label.to_string(), start));
            }
            _ => match &open {
                Some((l, _)) if l == label => {}
                _ => return Err(err(format!("I-{label} does not continue a {label} entity: it must follow B-{label} or I-{label}"))),
            },
        }
        last_end = end;
        sentence_has_tokens = true;
    }
    if let Some(doc) = docs.last_mut() {
        close(doc, &mut open, last_end);
    }
    for d in &mut docs {
        if d.text.ends_with('\n') {
            d.text.pop();
        }
        d.sort_spans();
    }
    Ok(Loaded { documents: docs, warnings: vec![] })
}
