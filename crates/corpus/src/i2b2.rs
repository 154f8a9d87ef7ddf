//! i2b2 / n2c2 2014 de-identification XML: one document a file,
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8" ?>
//! <deIdi2b2>
//! <TEXT><![CDATA[ ...the note... ]]></TEXT>
//! <TAGS>
//! <NAME id="P0" start="16" end="20" text="..." TYPE="PATIENT" comment="" />
//! </TAGS>
//! </deIdi2b2>
//! ```
//!
//! The document id is the file stem, the text is the content of `<TEXT>` (CDATA sections taken as
//! they are, entities such as `&amp;` decoded elsewhere), and each child of `<TAGS>` is a span whose
//! label is its `TYPE` (`PATIENT`, `DOCTOR`, `DATE`, ...; the element name is the category). Offsets
//! count Unicode characters of the decoded TEXT content, as the n2c2 files do. Line ends are kept as
//! written; where the `text` attributes only match after `\r\n` → `\n` (what an XML parser does), the
//! text is read that way. A `text` attribute that differs from the TEXT at the offsets (whitespace
//! aside) is an error: the offsets count something else.
//!
//! Only the markup needed for these files is read: elements, attributes, character and the five
//! predefined entity references, CDATA, comments, processing instructions and a DOCTYPE line.
//! Errors name the file, the line and the element, never the text.

use crate::format::{check_id, decode_utf8, write_per_document, Loaded, ReadOptions};
use crate::text::{list, stem};
use crate::validate::{check_span_offsets, resolve_overlaps};
use crate::{CorpusError, Document, OverlapPolicy, Result, Span};
use std::collections::HashMap;
use std::path::Path;

/// A directory of `*.xml` files (not recursive), or one file.
pub fn read_path(path: &Path, options: &ReadOptions) -> Result<Loaded> {
    let files = if path.is_dir() { list(path, "xml")? } else { vec![path.to_path_buf()] };
    let mut loaded = Loaded::default();
    for f in files {
        let (doc, warnings) = read_file(&f, options)?;
        loaded.documents.push(doc);
        loaded.warnings.extend(warnings);
    }
    Ok(loaded)
}

/// One i2b2 file.
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<(Document, Vec<CorpusError>)> {
    let bytes = std::fs::read(path).map_err(|e| CorpusError::io(path, e))?;
    let content = decode_utf8(path, bytes)?;
    let parsed = parse(&content).map_err(|(line, m)| CorpusError::new(path, Some(line), m))?;
    let id = stem(path);
    check_id(path, None, &id)?;
    let Some(mut text) = parsed.text else {
        return Err(CorpusError::new(
            path,
            None,
            "no <TEXT> element: an i2b2 de-identification file holds <TEXT><![CDATA[...]]></TEXT> and <TAGS>; \
             pass --from for another format",
        ));
    };
    let mut spans = Vec::new();
    let mut lines: HashMap<(usize, usize, String), usize> = HashMap::new();
    let mut surfaces = Vec::new();
    for tag in &parsed.tags {
        let err = |m: String| CorpusError::new(path, Some(tag.line), format!("<{}{}>: {m}", tag.name, tag.id_note()));
        let num = |key: &str| -> Result<usize> {
            let v = tag.attr(key).ok_or_else(|| err(format!("no {key} attribute; every tag needs start, end and TYPE")))?;
            v.trim()
                .parse::<usize>()
                .map_err(|_| err(format!("{key} is not a whole number; offsets count characters of the TEXT")))
        };
        let (start, end) = (num("start")?, num("end")?);
        let label = tag
            .attr("TYPE")
            .or_else(|| tag.attr("type"))
            .map(|t| t.trim().to_string())
            .ok_or_else(|| err("no TYPE attribute; every tag needs start, end and TYPE (e.g. TYPE=\"PATIENT\")".into()))?;
        lines.entry((start, end, label.clone())).or_insert(tag.line);
        surfaces.push((start, end, tag.attr("text").map(str::to_string), tag.line, tag.name.clone(), tag.id_note()));
        spans.push(Span::new(start, end, label));
    }
    // The `text` attributes decide whether offsets count the text as written or with `\r\n` → `\n`.
    if text.contains('\r') && first_mismatch(&text, &surfaces).is_some() {
        let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
        if first_mismatch(&normalised, &surfaces).is_none() {
            text = normalised;
        }
    }
    let n = text.chars().count();
    let mut warnings = Vec::new();
    for (s, (_, _, _, line, name, note)) in spans.iter().zip(&surfaces) {
        let err = |m: String| CorpusError::new(path, Some(*line), format!("<{name}{note}>: {m}"));
        if let Some(w) = check_span_offsets(s, n, options.offsets_only).map_err(err)? {
            warnings.push(err(w));
        }
    }
    if let Some(i) = first_mismatch(&text, &surfaces) {
        let (start, end, _, line, name, note) = &surfaces[i];
        let m = format!(
            "<{name}{note}>: the text attribute differs from the TEXT at {start}..{end}; offsets must count \
             Unicode characters of the TEXT content (not bytes); fix the offsets or the text attribute"
        );
        if options.offsets_only {
            warnings.push(CorpusError::new(path, Some(*line), m));
        } else {
            return Err(CorpusError::new(path, Some(*line), m));
        }
    }
    let mut doc = Document { id, text, spans };
    for (span, msg) in resolve_overlaps(&mut doc, options.overlaps) {
        let line = lines.get(&(span.start, span.end, span.label.clone())).copied();
        let e = CorpusError::new(path, line, msg);
        match options.overlaps {
            OverlapPolicy::Error => return Err(e),
            OverlapPolicy::KeepFirst | OverlapPolicy::Allow => warnings.push(e),
        }
    }
    Ok((doc, warnings))
}

type Surface = (usize, usize, Option<String>, usize, String, String);

/// Index of the first tag whose `text` attribute does not match the text at its offsets (in range only).
fn first_mismatch(text: &str, surfaces: &[Surface]) -> Option<usize> {
    let chars: Vec<char> = text.chars().collect();
    // Runs of whitespace compare as one space (attribute values turn line ends into spaces).
    let squash = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if !c.is_whitespace() {
                out.push(c);
            } else if !out.ends_with(' ') {
                out.push(' ');
            }
        }
        out
    };
    surfaces.iter().position(|(start, end, surface, ..)| {
        let Some(surface) = surface else { return false };
        if start >= end || *end > chars.len() {
            return false; // reported by the range check
        }
        let at: String = chars[*start..*end].iter().collect();
        squash(&at) != squash(surface)
    })
}

/// What the parser keeps of a file.
#[derive(Debug, Default)]
struct Parsed {
    text: Option<String>,
    tags: Vec<Tag>,
}

#[derive(Debug)]
struct Tag {
    name: String,
    line: usize,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// ` id P3` when the tag has a short, plain id (never anything that could be document text).
    fn id_note(&self) -> String {
        match self.attr("id") {
            Some(id) if !id.is_empty() && id.len() <= 12 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                format!(" id {id}")
            }
            _ => String::new(),
        }
    }
}

type PResult<T> = std::result::Result<T, (usize, String)>;

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn advance(&mut self, n: usize) {
        self.line += self.s[self.pos..self.pos + n].matches('\n').count();
        self.pos += n;
    }
    /// Advances past `end`, or fails naming the line where the construct began.
    fn skip_past(&mut self, end: &str, what: &str) -> PResult<&'a str> {
        let line = self.line;
        match self.rest().find(end) {
            Some(i) => {
                let inner = &self.rest()[..i];
                self.advance(i + end.len());
                Ok(inner)
            }
            None => Err((line, format!("{what} that starts here is never closed (no {end:?}); the file is cut short or is not XML"))),
        }
    }
    fn skip_ws(&mut self) {
        let n = self.rest().len() - self.rest().trim_start().len();
        self.advance(n);
    }
    fn name(&mut self) -> Option<String> {
        let n = self
            .rest()
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .map_or(self.rest().len(), |(i, _)| i);
        if n == 0 {
            return None;
        }
        let name = self.rest()[..n].to_string();
        self.advance(n);
        Some(name)
    }
}

/// Decodes `&amp;`-style references; `None` for an unknown or malformed one.
fn decode_entities(raw: &str) -> Option<String> {
    if !raw.contains('&') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after.find(';').filter(|&j| j <= 10)?;
        let ent = &after[..semi];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ if ent.starts_with("#x") || ent.starts_with("#X") => char::from_u32(u32::from_str_radix(&ent[2..], 16).ok()?)?,
            _ if ent.starts_with('#') => char::from_u32(ent[1..].parse().ok()?)?,
            _ => return None,
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn parse(content: &str) -> PResult<Parsed> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut p = Parser { s: content, pos: 0, line: 1 };
    let mut out = Parsed::default();
    // Open elements: (name, line). Inside TEXT, characters and CDATA are collected; inside TAGS,
    // each child element is a tag.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut text_buf: Option<String> = None;
    let in_text = |stack: &[(String, usize)]| stack.last().is_some_and(|(n, _)| n == "TEXT");
    while p.pos < p.s.len() {
        let rest = p.rest();
        if rest.starts_with("<![CDATA[") {
            let line = p.line;
            p.advance(9);
            let inner = p.skip_past("]]>", "a CDATA section")?;
            match &mut text_buf {
                Some(buf) if in_text(&stack) => buf.push_str(inner),
                _ if inner.trim().is_empty() => {}
                _ => return Err((line, "a CDATA section outside <TEXT>; the note belongs inside <TEXT>".into())),
            }
        } else if rest.starts_with("<!--") {
            p.advance(4);
            p.skip_past("-->", "a comment")?;
        } else if rest.starts_with("<?") {
            p.advance(2);
            p.skip_past("?>", "a processing instruction")?;
        } else if rest.starts_with("<!") {
            if in_text(&stack) {
                return Err((p.line, markup_in_text()));
            }
            p.advance(2);
            p.skip_past(">", "a <!DOCTYPE> declaration")?;
        } else if rest.starts_with("</") {
            let line = p.line;
            if in_text(&stack) && !rest.starts_with("</TEXT") {
                return Err((line, markup_in_text()));
            }
            p.advance(2);
            let name = p.name().ok_or((line, "an end tag without a name".to_string()))?;
            p.skip_ws();
            if !p.rest().starts_with('>') {
                return Err((line, format!("end tag </{name}> is not closed with '>'")));
            }
            p.advance(1);
            match stack.pop() {
                Some((open, _)) if open == name => {
                    if name == "TEXT" {
                        if out.text.is_some() {
                            return Err((line, "a second <TEXT> element; a file holds one note".into()));
                        }
                        out.text = text_buf.take();
                    }
                }
                Some((open, open_line)) => {
                    return Err((line, format!("</{name}> closes <{open}> opened on line {open_line}; the file is not well-formed XML")))
                }
                None => return Err((line, format!("</{name}> closes nothing; the file is not well-formed XML"))),
            }
        } else if rest.starts_with('<') {
            let line = p.line;
            if in_text(&stack) {
                return Err((line, markup_in_text()));
            }
            p.advance(1);
            let name = p.name().ok_or((line, "a '<' that starts no element; escape it as &lt; or use a CDATA section".to_string()))?;
            let mut attrs = Vec::new();
            let empty;
            loop {
                p.skip_ws();
                if p.rest().starts_with("/>") {
                    p.advance(2);
                    empty = true;
                    break;
                }
                if p.rest().starts_with('>') {
                    p.advance(1);
                    empty = false;
                    break;
                }
                let key = p.name().ok_or((line, format!("element <{name}>: an attribute without a name, or the tag is not closed")))?;
                p.skip_ws();
                if !p.rest().starts_with('=') {
                    return Err((line, format!("element <{name}>: attribute {key} has no value (write {key}=\"...\")")));
                }
                p.advance(1);
                p.skip_ws();
                let quote = match p.rest().chars().next() {
                    Some(q @ ('"' | '\'')) => q,
                    _ => return Err((line, format!("element <{name}>: the value of {key} is not in quotes"))),
                };
                p.advance(1);
                let raw = p.skip_past(if quote == '"' { "\"" } else { "'" }, "an attribute value")?;
                // Attribute-value normalisation: line ends and tabs read as spaces.
                let raw = raw.replace(['\n', '\r', '\t'], " ");
                let value = decode_entities(&raw)
                    .ok_or((line, format!("element <{name}>: attribute {key} holds an unknown or malformed entity reference (&...;)")))?;
                attrs.push((key, value));
            }
            // Children of TAGS are the tags (anything nested deeper is not part of the format).
            if stack.len() == 2 && stack[1].0 == "TAGS" {
                out.tags.push(Tag { name: name.clone(), line, attrs });
            }
            if name == "TEXT" {
                if empty {
                    if out.text.is_some() {
                        return Err((line, "a second <TEXT> element; a file holds one note".into()));
                    }
                    out.text = Some(String::new());
                } else {
                    text_buf = Some(String::new());
                }
            }
            if !empty {
                stack.push((name, line));
            }
        } else {
            // Character data up to the next '<'.
            let line = p.line;
            let n = rest.find('<').unwrap_or(rest.len());
            let raw = &rest[..n];
            p.advance(n);
            match &mut text_buf {
                Some(buf) if in_text(&stack) => {
                    let decoded = decode_entities(raw).ok_or((
                        line,
                        "an unknown or malformed entity reference (&...;) in <TEXT>; write & as &amp; or wrap the text in <![CDATA[...]]>"
                            .to_string(),
                    ))?;
                    buf.push_str(&decoded);
                }
                _ if raw.trim().is_empty() => {}
                // Text outside TEXT (between tags, after the root): not part of the format; ignored,
                // but text outside any element means this is not XML.
                _ if stack.is_empty() => return Err((line, "text outside the root element; is this an i2b2 XML file? pass --from for another format".into())),
                _ => {}
            }
        }
    }
    if let Some((open, line)) = stack.pop() {
        return Err((line, format!("<{open}> is never closed; the file is cut short or is not well-formed XML")));
    }
    Ok(out)
}

fn markup_in_text() -> String {
    "markup inside <TEXT>: the note must be plain text or a CDATA section (inline PHI tags as in the 2006 \
     i2b2 format are not read); escape '<' as &lt; or wrap the text in <![CDATA[...]]>"
        .into()
}

/// The i2b2 2014 category (element name) of a TYPE; `PHI` for labels outside that tag set.
pub fn category(label: &str) -> &'static str {
    match label {
        "PATIENT" | "DOCTOR" | "USERNAME" => "NAME",
        "PROFESSION" => "PROFESSION",
        "ROOM" | "DEPARTMENT" | "HOSPITAL" | "ORGANIZATION" | "STREET" | "CITY" | "STATE" | "COUNTRY" | "ZIP"
        | "LOCATION-OTHER" => "LOCATION",
        "AGE" => "AGE",
        "DATE" => "DATE",
        "PHONE" | "FAX" | "EMAIL" | "URL" | "IPADDR" => "CONTACT",
        "SSN" | "MEDICALRECORD" | "HEALTHPLAN" | "ACCOUNT" | "LICENSE" | "VEHICLE" | "DEVICE" | "BIOID" | "IDNUM" => "ID",
        _ => "PHI",
    }
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// One document as an i2b2 2014 XML file.
pub fn to_xml(doc: &Document) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<deIdi2b2>\n<TEXT><![CDATA[");
    // `]]>` cannot sit inside a CDATA section: close it and open another between `]]` and `>`.
    out.push_str(&doc.text.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]></TEXT>\n<TAGS>\n");
    let idx = crate::CharIndex::new(&doc.text);
    for (i, s) in doc.spans.iter().enumerate() {
        let surface = if s.end <= idx.len() && s.start <= s.end { idx.slice(&doc.text, s.start, s.end) } else { "" };
        out.push_str(&format!(
            "<{} id=\"P{i}\" start=\"{}\" end=\"{}\" text=\"{}\" TYPE=\"{}\" comment=\"\" />\n",
            category(&s.label),
            s.start,
            s.end,
            escape_attr(surface),
            escape_attr(&s.label)
        ));
    }
    out.push_str("</TAGS>\n</deIdi2b2>\n");
    out
}

/// Writes `DIR/ID.xml` for every document.
pub fn write_dir(dir: &Path, docs: &[Document]) -> Result<()> {
    write_per_document(dir, docs, &[("xml", &|d| to_xml(d).into())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cdata_entities_and_tags() {
        let x = "<?xml version=\"1.0\"?>\n<!-- c -->\n<root>\n<TEXT>a &amp; b <![CDATA[<x> ]]>é</TEXT>\n<TAGS>\n<NAME id=\"P0\" start=\"0\" end=\"1\" text=\"a\" TYPE=\"PATIENT\"/>\n</TAGS>\n</root>\n";
        let p = parse(x).unwrap();
        assert_eq!(p.text.as_deref(), Some("a & b <x> é"));
        assert_eq!(p.tags.len(), 1);
        assert_eq!(p.tags[0].line, 6);
        assert_eq!(p.tags[0].attr("TYPE"), Some("PATIENT"));
    }

    #[test]
    fn malformed_markup_names_the_line_but_no_text() {
        let e = parse("<r>\n<TEXT>Ana <b>García</b></TEXT></r>").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(!e.1.contains("García") && !e.1.contains("Ana"), "{}", e.1);
        let e = parse("<r>\n<TEXT><![CDATA[Ana García").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(!e.1.contains("Ana"));
        let e = parse("<r><TEXT>x</TEXT>\n<TAGS>\n</r>").unwrap_err();
        assert_eq!(e.0, 3, "{}", e.1);
    }

    #[test]
    fn cdata_end_marker_in_text_survives_writing() {
        let doc = Document { id: "a".into(), text: "x ]]> y".into(), spans: vec![Span::new(6, 7, "CITY")] };
        let p = parse(&to_xml(&doc)).unwrap();
        assert_eq!(p.text.as_deref(), Some("x ]]> y"));
    }
}
