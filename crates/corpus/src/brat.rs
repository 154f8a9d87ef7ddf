//! BRAT standoff directories: `NAME.txt` holds the text, `NAME.ann` its `T` lines:
//! `T<n> TAB <LABEL> <start> <end> TAB <surface text>`, offsets in characters (a BOM is char 0).

use crate::format::{decode_utf8, write_per_document, Loaded, ReadOptions, Render};
use crate::text::{list, stem};
use crate::validate::{check_span_offsets, resolve_overlaps};
use crate::{CharIndex, CorpusError, Document, OverlapPolicy, Result, Span};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reads a BRAT directory. Every `.txt` needs its `.ann` and every `.ann` its `.txt` (unless
/// `options.ann_only`).
pub fn read_dir(dir: &Path, options: &ReadOptions) -> Result<Loaded> {
    let mut txts: BTreeMap<String, PathBuf> = list(dir, "txt")?.into_iter().map(|p| (stem(&p), p)).collect();
    let anns: BTreeMap<String, PathBuf> = list(dir, "ann")?.into_iter().map(|p| (stem(&p), p)).collect();
    if !options.ann_only {
        if let Some((id, path)) = txts.iter().find(|(id, _)| !anns.contains_key(*id)) {
            let ann = dir.join(format!("{id}.ann"));
            if let Some(what) = not_a_file(&ann) {
                return Err(CorpusError::new(&ann, None, format!("is {what}, not a file: the annotations of {id}.txt must be a regular file {id}.ann (empty if the document has no PHI)")));
            }
            return Err(CorpusError::new(
                path,
                None,
                format!("no {id}.ann beside it: add an empty .ann if the document has no PHI, or read the directory with --from text"),
            ));
        }
    }
    let mut loaded = Loaded::default();
    for (id, ann_path) in &anns {
        let text = match txts.remove(id) {
            Some(txt_path) => Some(decode_utf8(&txt_path, std::fs::read(&txt_path).map_err(|e| CorpusError::io(&txt_path, e))?)?),
            None if options.ann_only => None,
            None => {
                let txt = dir.join(format!("{id}.txt"));
                if let Some(what) = not_a_file(&txt) {
                    return Err(CorpusError::new(&txt, None, format!("is {what}, not a file: the text of {id}.ann must be a regular file {id}.txt")));
                }
                return Err(CorpusError::new(ann_path, None, format!("no {id}.txt beside it: every .ann needs the text its offsets point into")));
            }
        };
        let ann = decode_utf8(ann_path, std::fs::read(ann_path).map_err(|e| CorpusError::io(ann_path, e))?)?;
        let doc = parse_ann(ann_path, id, text, &ann, options, &mut loaded.warnings)?;
        loaded.documents.push(doc);
    }
    Ok(loaded)
}

/// What a path that exists but is not a regular file is ("a directory", "a FIFO", ...); `None` for a
/// regular file (or a link to one) and for a path that does not exist.
fn not_a_file(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_socket() {
            return Some("a socket");
        }
        if t.is_block_device() || t.is_char_device() {
            return Some("a device");
        }
    }
    Some("not a regular file")
}

/// Parses one `.ann` against its text (`None`: annotations only, no surface check).
pub fn parse_ann(
    path: &Path,
    id: &str,
    text: Option<String>,
    ann: &str,
    options: &ReadOptions,
    warnings: &mut Vec<CorpusError>,
) -> Result<Document> {
    let index = text.as_deref().map(CharIndex::new);
    let mut spans = Vec::new();
    let mut span_lines = Vec::new();
    let mut ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in ann.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with('T') {
            let kind = match line.chars().next() {
                Some('R') => "a relation",
                Some('E') => "an event",
                Some('A') | Some('M') => "an attribute",
                Some('N') => "a normalization",
                Some('#') => "a note",
                _ => "not a BRAT annotation",
            };
            let msg = format!("{kind} line: synthdeid reads only text-bound `T` lines (pass --skip-non-entity-lines to skip such lines with a warning)");
            if options.skip_non_entity_lines {
                warnings.push(CorpusError::new(path, Some(line_no), msg.replace(" (pass --skip-non-entity-lines to skip such lines with a warning)", "; skipped")));
                continue;
            }
            return Err(CorpusError::new(path, Some(line_no), msg));
        }
        let err = |m: String| CorpusError::new(path, Some(line_no), m);
        let mut fields = line.splitn(3, '\t');
        let tid = fields.next().unwrap_or_default();
        let (Some(typed), surface) = (fields.next(), fields.next()) else {
            return Err(err(format!("{tid}: expected `T<n> TAB LABEL START END TAB TEXT`")));
        };
        if let Some(first) = ids.insert(tid.to_string(), line_no) {
            let msg = format!("{tid}: id already used on line {first}; each T id must be unique in its .ann (renumber the annotations)");
            if !options.offsets_only {
                return Err(err(msg));
            }
            warnings.push(err(format!("{msg}; both spans scored, as the official MEDDOCAN script does")));
        }
        let mut parts = typed.splitn(2, ' ');
        let label = parts.next().unwrap_or_default();
        let offsets = parts.next().unwrap_or_default();
        if offsets.contains(';') {
            return Err(err(format!(
                "{tid}: discontinuous span ({label} {offsets}) is not supported; split it into one T line per fragment"
            )));
        }
        let nums: Vec<&str> = offsets.split(' ').collect();
        let parse = |s: &str| s.parse::<usize>().map_err(|_| err(format!("{tid}: offset {s:?} is not a non-negative integer")));
        if nums.len() != 2 {
            return Err(err(format!("{tid}: expected `LABEL START END`, found {} offset fields", nums.len())));
        }
        let span = Span::new(parse(nums[0])?, parse(nums[1])?, label);
        if let (Some(text), Some(index)) = (text.as_deref(), index.as_ref()) {
            let range_warning = check_span_offsets(&span, index.len(), options.offsets_only).map_err(|m| err(format!("{tid}: {m}")))?;
            match (range_warning, surface) {
                (Some(w), _) => warnings.push(err(format!("{tid}: {w}"))),
                (None, Some(surface)) => {
                    let actual = index.slice(text, span.start, span.end);
                    if !same_surface(actual, surface) {
                        let msg = format!(
                            "{tid}: the .ann text ({} chars) is not the .txt text at {}..{} ({} chars)",
                            surface.chars().count(),
                            span.start,
                            span.end,
                            actual.chars().count()
                        );
                        if !options.offsets_only {
                            return Err(err(format!("{msg}; the offsets must count Unicode characters, with a BOM as character 0")));
                        }
                        warnings.push(err(format!("{msg}; scored by its offsets, as the official MEDDOCAN script does")));
                    }
                }
                (None, None) => {}
            }
        } else if span.label.is_empty() || (span.start >= span.end && !options.offsets_only) {
            return Err(err(format!("{tid}: span {}..{} is empty or reversed, or has no label", span.start, span.end)));
        } else if span.start >= span.end {
            warnings.push(err(format!(
                "{tid}: span {} {}..{} is empty or reversed; scored by its offsets, as the official MEDDOCAN script does",
                span.label, span.start, span.end
            )));
        }
        span_lines.push((span.clone(), line_no));
        spans.push(span);
    }
    let mut doc = Document { id: id.to_string(), text: text.unwrap_or_default(), spans };
    let conflicts = resolve_overlaps(&mut doc, options.overlaps);
    for (span, msg) in conflicts {
        let line = span_lines.iter().find(|(s, _)| *s == span).map(|(_, l)| *l);
        let e = CorpusError::new(path, line, msg);
        match options.overlaps {
            OverlapPolicy::Error => return Err(e),
            OverlapPolicy::KeepFirst | OverlapPolicy::Allow => warnings.push(e),
        }
    }
    Ok(doc)
}

/// BRAT writes a newline inside a span as a space in the `.ann` surface field.
fn same_surface(actual: &str, surface: &str) -> bool {
    actual == surface || actual.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).eq(surface.chars())
}

/// Writes `NAME.txt` (exact bytes) and, if `with_ann`, `NAME.ann` for every document.
pub fn write_dir(dir: &Path, docs: &[Document], with_ann: bool) -> Result<()> {
    let txt: Render = &|d| d.text.as_str().into();
    let ann: Render = &|d| ann_string(d).into();
    let files = [("txt", txt), ("ann", ann)];
    write_per_document(dir, docs, &files[..if with_ann { 2 } else { 1 }])
}

/// The `.ann` content of a document: `T1..Tn` in span order.
pub fn ann_string(doc: &Document) -> String {
    let index = CharIndex::new(&doc.text);
    let mut out = String::new();
    for (i, s) in doc.spans.iter().enumerate() {
        let surface: String = if s.end <= index.len() {
            index.slice(&doc.text, s.start, s.end).chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect()
        } else {
            String::new()
        };
        out.push_str(&format!("T{}\t{} {} {}\t{}\n", i + 1, s.label, s.start, s.end, surface));
    }
    out
}
