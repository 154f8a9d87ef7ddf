//! Format detection and the two entry points every command uses: [`read_corpus`] and
//! [`write_corpus`].

use crate::{brat, conll, i2b2, jsonl, text, uima, CorpusError, Document, OverlapPolicy, Result};
use std::collections::HashSet;
use std::path::Path;

/// The on-disk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A directory of `NAME.txt` + `NAME.ann` pairs (BRAT standoff, `T` lines).
    Brat,
    /// One JSON document per line: `{"id", "text", "spans": [{"start", "end", "label"}]}`.
    Jsonl,
    /// `token<TAB>BIO-tag` lines, a blank line between sentences, `# doc_id = ID` before each
    /// document. Import rebuilds each text from its tokens (single spaces, one sentence a line).
    Conll,
    /// A directory of `NAME.txt` files without annotations (e.g. generated text).
    Text,
    /// i2b2 / n2c2 2014 de-identification XML: `<TEXT><![CDATA[...]]></TEXT>` and `<TAGS>` whose
    /// children carry `start`, `end` (characters of the TEXT) and `TYPE` (the label). One file, or a
    /// directory of `NAME.xml`.
    I2b2Xml,
    /// INCEpTION / UIMA CAS JSON (0.4.0): the `_InitialView` Sofa's `sofaString` and its NamedEntity-like
    /// annotations (label from `value`, else `label`, else the type); offsets in UTF-16 code units
    /// unless the header says otherwise, converted to characters. One file, or a directory of `NAME.json`.
    UimaJson,
}

impl Format {
    pub const NAMES: [&'static str; 6] = ["brat", "jsonl", "conll", "text", "i2b2-xml", "uima-json"];

    pub fn parse(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "brat" => Some(Format::Brat),
            "jsonl" | "json" => Some(Format::Jsonl),
            "conll" | "bio" => Some(Format::Conll),
            "text" | "txt" => Some(Format::Text),
            "i2b2-xml" | "i2b2" | "xml" | "n2c2" => Some(Format::I2b2Xml),
            "uima-json" | "uima" | "inception" | "cas-json" => Some(Format::UimaJson),
            _ => None,
        }
    }

    /// Format of an existing path: `.jsonl` → JSONL, `.conll`/`.bio` → CoNLL, `.xml` → i2b2 XML,
    /// `.json` → UIMA CAS JSON; a directory holding any `.ann` file → BRAT, else any `.txt` → plain
    /// text, else any `.xml` → i2b2 XML, else any `.json` → UIMA CAS JSON, else plain text.
    pub fn detect(path: &Path) -> Result<Format> {
        if path.is_dir() {
            let exts: HashSet<String> = std::fs::read_dir(path)
                .map_err(|e| CorpusError::io(path, e))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.path().extension().map(|x| x.to_string_lossy().into_owned()))
                .collect();
            let has = |x: &str| exts.contains(x);
            return Ok(if has("ann") {
                Format::Brat
            } else if has("txt") {
                Format::Text
            } else if has("xml") {
                Format::I2b2Xml
            } else if has("json") {
                Format::UimaJson
            } else {
                Format::Text
            });
        }
        let input = match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("xml") => Some(Format::I2b2Xml),
            Some("json") => Some(Format::UimaJson),
            _ => None,
        };
        input.or_else(|| Self::from_extension(path)).ok_or_else(|| {
            CorpusError::new(
                path,
                None,
                "cannot tell the format: use a directory (BRAT, text, i2b2 .xml or UIMA .json files), a .jsonl, \
                 .conll/.bio, .xml or .json file, or pass --from/--to",
            )
        })
    }

    /// Format of a path to be written: a `.jsonl`/`.conll`/`.bio` file name, anything else a BRAT directory.
    pub fn for_output(path: &Path) -> Format {
        Self::from_extension(path).unwrap_or(Format::Brat)
    }

    fn from_extension(path: &Path) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("jsonl") => Some(Format::Jsonl),
            Some("conll") | Some("bio") => Some(Format::Conll),
            _ => None,
        }
    }
}

/// How strict reading is. The default is strict: anything surprising is an error.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub overlaps: OverlapPolicy,
    /// BRAT lines other than `T` (relations, events, attributes, notes): an error by default;
    /// when true, each one becomes a warning naming file and line.
    pub skip_non_entity_lines: bool,
    /// BRAT: read `.ann` files even where no `.txt` lies beside them (prediction directories of
    /// other tools). Such documents have an empty text and their spans are checked only for order.
    pub ann_only: bool,
    /// Scoring predictions: read spans by their offsets only, as the official MEDDOCAN script does. A
    /// `.ann` surface text that differs from the `.txt` at the offsets (systems normalise whitespace),
    /// an empty, reversed or out-of-range span, and a repeated `T` id each become a warning naming file
    /// and line (no text), and the span is kept to be scored. A bad label is still an error.
    pub offsets_only: bool,
}

/// Documents plus the warnings that lenient options turned errors into.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub documents: Vec<Document>,
    pub warnings: Vec<CorpusError>,
}

/// Reads a corpus; `format: None` detects it from the path. Documents come sorted by id.
pub fn read_corpus_report(path: &Path, format: Option<Format>, options: &ReadOptions) -> Result<Loaded> {
    if !path.exists() {
        return Err(CorpusError::new(path, None, "no such file or directory"));
    }
    let format = match format {
        Some(f) => f,
        None => Format::detect(path)?,
    };
    let mut loaded = match format {
        Format::Brat => brat::read_dir(path, options)?,
        Format::Jsonl => jsonl::read_file(path, options)?,
        Format::Conll => conll::read_file(path, options)?,
        Format::Text => Loaded { documents: text::read_dir(path)?, warnings: vec![] },
        Format::I2b2Xml => i2b2::read_path(path, options)?,
        Format::UimaJson => uima::read_path(path, options)?,
    };
    loaded.documents.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(loaded)
}

/// Like [`read_corpus_report`]; warnings (only possible with lenient options) go to stderr.
pub fn read_corpus(path: &Path, format: Option<Format>, options: &ReadOptions) -> Result<Vec<Document>> {
    let loaded = read_corpus_report(path, format, options)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.documents)
}

/// Writes documents; `format: None` takes it from the path ([`Format::for_output`]).
pub fn write_corpus(path: &Path, format: Option<Format>, docs: &[Document]) -> Result<()> {
    let mut seen = HashSet::new();
    for d in docs {
        if !seen.insert(d.id.as_str()) {
            return Err(CorpusError::new(path, None, format!("two documents share the id {:?}; ids must be unique", d.id)));
        }
    }
    match format.unwrap_or_else(|| Format::for_output(path)) {
        Format::Brat => brat::write_dir(path, docs, true),
        Format::Text => brat::write_dir(path, docs, false),
        Format::Jsonl => jsonl::write_file(path, docs),
        Format::I2b2Xml => i2b2::write_dir(path, docs),
        Format::UimaJson => uima::write_dir(path, docs),
        Format::Conll => {
            for w in conll::write_file(path, docs)? {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
    }
}

/// The workspace's atomic writer ([`fsutil`]), under its old path for the callers not yet moved
/// to `fsutil` (perceptron, tagging, the binary); new code calls `fsutil` directly.
pub use fsutil::{atomic_write, atomic_write_private};

impl From<fsutil::Error> for CorpusError {
    fn from(e: fsutil::Error) -> Self {
        CorpusError::io(e.path, e.source)
    }
}

/// What one file of a document holds, written as `ID.EXT` by [`write_per_document`].
pub(crate) type Render<'r> = &'r dyn for<'a> Fn(&'a Document) -> std::borrow::Cow<'a, str>;

/// Writes, for every document in order, one file `DIR/ID.EXT` per `(EXT, render)` (atomically),
/// after checking that its id can be a file name.
pub(crate) fn write_per_document(dir: &Path, docs: &[Document], files: &[(&str, Render)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
    for doc in docs {
        check_id(dir, None, &doc.id)?;
        for (ext, render) in files {
            fsutil::atomic_write(&dir.join(format!("{}.{ext}", doc.id)), render(doc).as_bytes())?;
        }
    }
    Ok(())
}

/// A document id must be usable as a file name.
pub(crate) fn check_id(path: &Path, line: Option<usize>, id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0', '\n', '\t']) {
        return Err(CorpusError::new(
            path,
            line,
            format!("document id {id:?} cannot be a file name: use a non-empty id without '/', '\\', tabs or newlines"),
        ));
    }
    Ok(())
}

/// Decodes UTF-8, naming the line and byte column of the first invalid byte.
pub(crate) fn decode_utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let col = at - bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1;
        CorpusError::new(
            path,
            Some(line),
            format!("not valid UTF-8 (byte {col} of the line); re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`"),
        )
    })
}
