//! INCEpTION / UIMA CAS JSON (the "UIMA CAS JSON 0.4.0" export): one document a file,
//!
//! ```text
//! {"%TYPES": {...},
//!  "%FEATURE_STRUCTURES": [
//!    {"%ID": 1, "%TYPE": "uima.cas.Sofa", "sofaID": "_InitialView", "sofaString": "...the note..."},
//!    {"%ID": 2, "%TYPE": "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity", "@sofa": 1,
//!     "begin": 16, "end": 20, "value": "PATIENT"}],
//!  "%VIEWS": {"_InitialView": {"%SOFA": 1, "%MEMBERS": [2]}}}
//! ```
//!
//! What is read, liberally:
//! - the text is the `sofaString` of the `_InitialView` Sofa (or of the only Sofa); annotations whose
//!   `@sofa` names another Sofa are skipped;
//! - a span is every feature structure with integer `begin`/`end` (or `^begin`/`^end`) that is a
//!   `NamedEntity`, sits in a custom layer (`webanno.custom.*`, `custom.*`) or has a `value`/`label`
//!   string, except DKPro's segmentation, morphology, syntax and metadata types (`Token`, `Sentence`,
//!   `Lemma`, ...), `uima.*` types and relations (`@Governor`/`@Dependent`);
//! - its label is `value`, else `label`, else the type's short name (`webanno.custom.Phi` → `Phi`);
//!   whitespace inside a label becomes `_` (labels are one word here);
//! - offsets count UTF-16 code units, as UIMA (Java) and cassis write them, unless the header says
//!   otherwise: `"%HEADER": {"%OFFSET_ENCODING": "UTF-8" | "UTF-16" | "UTF-32"}` (UTF-8: bytes,
//!   UTF-32: code points). They are converted to Unicode characters, which the project uses
//!   everywhere; an offset inside a character (half a surrogate pair) is an error.
//!
//! The document id is the file stem. Errors name the file and the feature structure (`%ID`), never
//! the text.

use crate::format::{check_id, decode_utf8, write_per_document, Loaded, ReadOptions};
use crate::text::{list, stem};
use crate::validate::{check_span_offsets, resolve_overlaps};
use crate::{CorpusError, Document, OverlapPolicy, Result, Span};
use serde_json::{json, Map, Value};
use std::path::Path;

const SOFA: &str = "uima.cas.Sofa";
const NAMED_ENTITY: &str = "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity";

/// Packages whose types are never PHI spans even when they carry a `value` (Lemma, Stem, ...).
const STRUCTURAL_PACKAGES: &[&str] = &[
    "uima.",
    "de.tudarmstadt.ukp.dkpro.core.api.segmentation.",
    "de.tudarmstadt.ukp.dkpro.core.api.lexmorph.",
    "de.tudarmstadt.ukp.dkpro.core.api.syntax.",
    "de.tudarmstadt.ukp.dkpro.core.api.metadata.",
    "org.dkpro.core.api.xml.",
];

/// How offsets in a file count the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetUnit {
    Utf8,
    Utf16,
    CodePoint,
}

/// A directory of `*.json` files (not recursive), or one file.
pub fn read_path(path: &Path, options: &ReadOptions) -> Result<Loaded> {
    let files = if path.is_dir() { list(path, "json")? } else { vec![path.to_path_buf()] };
    let mut loaded = Loaded::default();
    for f in files {
        let (doc, warnings) = read_file(&f, options)?;
        loaded.documents.push(doc);
        loaded.warnings.extend(warnings);
    }
    Ok(loaded)
}

fn fs_note(fs: &Map<String, Value>) -> String {
    match fs.get("%ID").and_then(Value::as_i64) {
        Some(id) => format!("feature structure %ID {id}"),
        None => "a feature structure without %ID".into(),
    }
}

/// One UIMA CAS JSON file.
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<(Document, Vec<CorpusError>)> {
    let bytes = std::fs::read(path).map_err(|e| CorpusError::io(path, e))?;
    let content = decode_utf8(path, bytes)?;
    let err = |line: Option<usize>, m: String| CorpusError::new(path, line, m);
    let value: Value = serde_json::from_str(content.strip_prefix('\u{feff}').unwrap_or(&content)).map_err(|e| {
        err(Some(e.line()), format!("not JSON ({}, column {}); is this a UIMA CAS JSON export?", crate::jsonl::strip_excerpt(&e), e.column()))
    })?;
    let Some(top) = value.as_object() else {
        return Err(err(None, "not a UIMA CAS JSON file: the top level is not an object; export as \"UIMA CAS JSON\" from INCEpTION".into()));
    };
    if top.contains_key("_views") || top.contains_key("_context") || top.contains_key("_referenced_fss") {
        return Err(err(
            None,
            "this is the legacy UIMA JSON format (_views/_referenced_fss); export as \"UIMA CAS JSON\" (0.4.0) from INCEpTION".into(),
        ));
    }
    let fss: Vec<&Map<String, Value>> = match top.get("%FEATURE_STRUCTURES") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        // cassis also reads a map from id to feature structure.
        Some(Value::Object(m)) => m.values().filter_map(Value::as_object).collect(),
        _ => {
            return Err(err(
                None,
                "not a UIMA CAS JSON file: no %FEATURE_STRUCTURES list; export as \"UIMA CAS JSON\" from INCEpTION, or pass --from for another format".into(),
            ))
        }
    };
    let unit = offset_unit(top).map_err(|m| err(None, m))?;

    // The Sofa: `_InitialView`, or the only one.
    let sofas: Vec<&Map<String, Value>> = fss.iter().copied().filter(|fs| fs.get("%TYPE").and_then(Value::as_str) == Some(SOFA)).collect();
    let sofa = match sofas.iter().find(|s| s.get("sofaID").and_then(Value::as_str) == Some("_InitialView")) {
        Some(s) => *s,
        None if sofas.len() == 1 => sofas[0],
        None if sofas.is_empty() => return Err(err(None, "no uima.cas.Sofa feature structure, so no text; is this a complete CAS export?".into())),
        None => return Err(err(None, format!("{} Sofas and none is _InitialView; cannot tell which holds the note", sofas.len()))),
    };
    let Some(text) = sofa.get("sofaString").and_then(Value::as_str) else {
        return Err(err(
            None,
            format!("{}: the Sofa has no sofaString (the text is not in the file); export with the text included", fs_note(sofa)),
        ));
    };
    let text = text.to_string();
    let sofa_id = sofa.get("%ID").and_then(Value::as_i64);
    let to_char = OffsetMap::new(&text, unit);

    let mut spans = Vec::new();
    let mut notes = Vec::new();
    for fs in &fss {
        let Some(ty) = fs.get("%TYPE").and_then(Value::as_str) else { continue };
        let int = |k: &str| fs.get(k).or_else(|| fs.get(&format!("^{k}")));
        let (Some(b), Some(e)) = (int("begin"), int("end")) else { continue };
        if !is_span_type(ty, fs) {
            continue;
        }
        if let (Some(r), Some(s)) = (fs.get("@sofa").and_then(Value::as_i64), sofa_id) {
            if r != s {
                continue; // another view
            }
        }
        let note = fs_note(fs);
        let ferr = |m: String| err(None, format!("{note} ({}): {m}", short(ty)));
        let (Some(b), Some(e)) = (b.as_u64(), e.as_u64()) else {
            return Err(ferr("begin and end must be whole numbers".into()));
        };
        let start = to_char.char_of(b as usize).map_err(&ferr)?;
        let end = to_char.char_of(e as usize).map_err(&ferr)?;
        let label = ["value", "label"]
            .iter()
            .find_map(|k| fs.get(*k).and_then(Value::as_str).filter(|s| !s.trim().is_empty()))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join("_"))
            .unwrap_or_else(|| short(ty).to_string());
        spans.push(Span::new(start, end, label));
        notes.push(format!("{note} ({})", short(ty)));
    }
    let id = stem(path);
    check_id(path, None, &id)?;
    let n = text.chars().count();
    let mut warnings = Vec::new();
    for (s, note) in spans.iter().zip(&notes) {
        if let Some(w) = check_span_offsets(s, n, options.offsets_only).map_err(|m| err(None, format!("{note}: {m}")))? {
            warnings.push(err(None, format!("{note}: {w}")));
        }
    }
    let mut doc = Document { id, text, spans };
    for (_, msg) in resolve_overlaps(&mut doc, options.overlaps) {
        let e = err(None, msg);
        match options.overlaps {
            OverlapPolicy::Error => return Err(e),
            OverlapPolicy::KeepFirst | OverlapPolicy::Allow => warnings.push(e),
        }
    }
    Ok((doc, warnings))
}

fn short(ty: &str) -> &str {
    ty.rsplit('.').next().unwrap_or(ty)
}

fn is_span_type(ty: &str, fs: &Map<String, Value>) -> bool {
    if fs.contains_key("@Governor") || fs.contains_key("@Dependent") {
        return false; // a relation between two spans
    }
    if STRUCTURAL_PACKAGES.iter().any(|p| ty.starts_with(p)) {
        return false;
    }
    let has_label = ["value", "label"].iter().any(|k| fs.get(*k).is_some_and(Value::is_string));
    short(ty) == "NamedEntity" || ty.starts_with("webanno.custom.") || ty.starts_with("custom.") || has_label
}

fn offset_unit(top: &Map<String, Value>) -> std::result::Result<OffsetUnit, String> {
    let header = top.get("%HEADER").and_then(Value::as_object);
    let raw = header
        .and_then(|h| h.get("%OFFSET_ENCODING").or_else(|| h.get("%OFFSET_UNIT")))
        .or_else(|| top.get("%OFFSET_ENCODING"));
    let Some(raw) = raw else { return Ok(OffsetUnit::Utf16) };
    let Some(s) = raw.as_str() else { return Err("%OFFSET_ENCODING is not a string; use \"UTF-16\", \"UTF-8\" or \"UTF-32\"".into()) };
    match s.to_ascii_uppercase().replace(['-', '_', ' '], "").as_str() {
        "UTF16" => Ok(OffsetUnit::Utf16),
        "UTF8" => Ok(OffsetUnit::Utf8),
        "UTF32" | "CODEPOINT" | "CODEPOINTS" | "UNICODECODEPOINTS" => Ok(OffsetUnit::CodePoint),
        _ => Err(format!("%OFFSET_ENCODING {s:?} is not known; use \"UTF-16\" (the default), \"UTF-8\" or \"UTF-32\"")),
    }
}

/// Offsets in some unit → character offsets.
struct OffsetMap {
    unit: OffsetUnit,
    /// `starts[i]` = offset (in the unit) where char `i` starts; one extra entry for the end.
    starts: Vec<usize>,
}

impl OffsetMap {
    fn new(text: &str, unit: OffsetUnit) -> Self {
        let mut starts = Vec::with_capacity(text.len() + 1);
        let mut at = 0;
        for c in text.chars() {
            starts.push(at);
            at += match unit {
                OffsetUnit::Utf8 => c.len_utf8(),
                OffsetUnit::Utf16 => c.len_utf16(),
                OffsetUnit::CodePoint => 1,
            };
        }
        starts.push(at);
        OffsetMap { unit, starts }
    }

    fn char_of(&self, offset: usize) -> std::result::Result<usize, String> {
        let units = match self.unit {
            OffsetUnit::Utf8 => "UTF-8 bytes",
            OffsetUnit::Utf16 => "UTF-16 code units",
            OffsetUnit::CodePoint => "code points",
        };
        let total = *self.starts.last().expect("one entry at least");
        if offset > total {
            return Err(format!("offset {offset} lies after the text, which has {total} {units}; is %OFFSET_ENCODING right?"));
        }
        self.starts
            .binary_search(&offset)
            .map_err(|_| format!("offset {offset} ({units}) falls inside a character; is %OFFSET_ENCODING right?"))
    }
}

/// One document as a UIMA CAS JSON file: a Sofa and one DKPro `NamedEntity` a span (label in `value`),
/// offsets in UTF-16 code units.
pub fn to_json(doc: &Document) -> String {
    let idx = OffsetMap::new(&doc.text, OffsetUnit::Utf16);
    let u16_of = |c: usize| idx.starts.get(c).copied().unwrap_or(*idx.starts.last().unwrap());
    let mut fss = vec![json!({
        "%ID": 1, "%TYPE": SOFA, "sofaNum": 1, "sofaID": "_InitialView", "mimeType": "text", "sofaString": doc.text,
    })];
    let mut members = Vec::new();
    for (i, s) in doc.spans.iter().enumerate() {
        let id = i + 2;
        fss.push(json!({"%ID": id, "%TYPE": NAMED_ENTITY, "@sofa": 1, "begin": u16_of(s.start), "end": u16_of(s.end), "value": s.label}));
        members.push(id);
    }
    let doc_id = doc.spans.len() + 2;
    fss.push(json!({"%ID": doc_id, "%TYPE": "uima.tcas.DocumentAnnotation", "@sofa": 1, "begin": 0, "end": u16_of(idx.starts.len() - 1), "language": "x-unspecified"}));
    members.push(doc_id);
    let v = json!({
        "%TYPES": {
            NAMED_ENTITY: {
                "%NAME": NAMED_ENTITY,
                "%SUPER_TYPE": "uima.tcas.Annotation",
                "value": {"%NAME": "value", "%RANGE": "uima.cas.String"},
                "identifier": {"%NAME": "identifier", "%RANGE": "uima.cas.String"},
            }
        },
        "%FEATURE_STRUCTURES": fss,
        "%VIEWS": {"_InitialView": {"%SOFA": 1, "%MEMBERS": members}},
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values serialize");
    s.push('\n');
    s
}

/// Writes `DIR/ID.json` for every document.
pub fn write_dir(dir: &Path, docs: &[Document]) -> Result<()> {
    write_per_document(dir, docs, &[("json", &|d| to_json(d).into())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_offsets_become_chars() {
        let m = OffsetMap::new("😀 Ana", OffsetUnit::Utf16);
        assert_eq!(m.char_of(3), Ok(2));
        assert_eq!(m.char_of(6), Ok(5));
        assert!(m.char_of(1).is_err());
        let m = OffsetMap::new("é Ana", OffsetUnit::Utf8);
        assert_eq!(m.char_of(3), Ok(2));
        assert!(m.char_of(1).is_err());
    }
}
