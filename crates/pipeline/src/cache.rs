//! Stage cache: a stage's output directory is named by a hash of its name, its config section and
//! the keys of its inputs. A finished stage leaves `done.json`; a rerun with the same key skips it,
//! a changed setting changes the key of that stage and of everything downstream, and a stage
//! killed halfway resumes from what its directory holds (checkpoints, finished shards).
//!
//! A finished stage also leaves `provenance.json` ([`Provenance`]): which backend and how many
//! shards produced it, the synthdeid version, and the size and SHA-256 of each of its files.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The identity of a stage's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageKey {
    pub stage: &'static str,
    pub hash: String,
}

impl StageKey {
    /// Hash of the stage name, its settings (as canonical JSON) and its inputs' keys.
    pub fn new(stage: &'static str, settings: &impl Serialize, inputs: &[&str]) -> StageKey {
        StageKey::with_revision(stage, revision(stage), settings, inputs)
    }

    fn with_revision(stage: &'static str, rev: u32, settings: &impl Serialize, inputs: &[&str]) -> StageKey {
        let mut h = Sha256::new();
        h.update(stage.as_bytes());
        h.update([0]);
        // Revision 0 adds nothing, so stages finished before revisions existed keep their keys.
        if rev > 0 {
            h.update(format!("rev{rev}").as_bytes());
            h.update([0]);
        }
        h.update(serde_json::to_vec(&serde_json::to_value(settings).expect("settings serialize")).expect("json"));
        for i in inputs {
            h.update([0]);
            h.update(i.as_bytes());
        }
        StageKey { stage, hash: hex(&h.finalize()) }
    }

    /// Like [`StageKey::new`], hashing only the settings that differ from `defaults`: a setting
    /// added in a later version (at its default) leaves the keys of finished stages as they
    /// were, so an upgraded synthdeid resumes a run instead of redoing it.
    pub fn of_settings<T: Serialize>(stage: &'static str, settings: &T, defaults: &T, inputs: &[&str]) -> StageKey {
        let v = serde_json::to_value(settings).expect("settings serialize");
        let d = serde_json::to_value(defaults).expect("settings serialize");
        StageKey::new(stage, &sparse(v, &d), inputs)
    }

    pub fn dir(&self, stages_root: &Path) -> PathBuf {
        stages_root.join(format!("{}-{}", self.stage, &self.hash[..12]))
    }
}

/// The code revision of each stage's output. Keys hash settings and inputs, not code: a change
/// that makes a stage write something else for the same settings bumps that stage's revision
/// here, so caches made before it are not reused (the stages downstream follow through their
/// inputs' keys).
pub const STAGE_REVISIONS: &[(&str, u32)] = &[
    ("annotator", 0),
    ("generator", 0),
    ("generate", 0),
    ("generate-samples", 0),
    ("annotate", 0),
    ("harden", 0),
    ("synthetic_ner", 0),
    ("evaluate", 0),
    ("audit", 0),
];

/// The revision of `stage` in [`STAGE_REVISIONS`]; 0 for a stage it does not name.
pub fn revision(stage: &str) -> u32 {
    STAGE_REVISIONS.iter().find(|(s, _)| *s == stage).map_or(0, |(_, r)| *r)
}

/// `v` without the object entries equal to those of `d` (recursively).
fn sparse(v: serde_json::Value, d: &serde_json::Value) -> serde_json::Value {
    match (v, d) {
        (serde_json::Value::Object(m), serde_json::Value::Object(dm)) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(k, x)| dm.get(k) != Some(x))
                .map(|(k, x)| {
                    let x = match dm.get(&k) {
                        Some(dx) => sparse(x, dx),
                        None => x,
                    };
                    (k, x)
                })
                .collect(),
        ),
        (v, _) => v,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of a document set (ids, texts, spans): the key of data inputs.
pub fn docs_hash(docs: &[corpus::Document]) -> String {
    let mut h = Sha256::new();
    for d in docs {
        h.update(serde_json::to_vec(d).expect("documents serialize"));
        h.update([b'\n']);
    }
    hex(&h.finalize())
}

/// What `done.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneMarker {
    pub stage: String,
    pub key: String,
    pub seconds: f64,
}

/// Whether a stage ran or came from the cache, how long it took, and what produced it (from its
/// `provenance.json`; absent for a stage finished by a synthdeid that did not write one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub key: String,
    pub cached: bool,
    pub seconds: f64,
    /// Processes the stage ran as (1: unsharded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<usize>,
    /// Where its samples came from: `local`, or `openai MODEL at URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// What produced a stage's output beyond its key (not part of it: the same output either way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Produced {
    /// `{"kind": "local"}`, or `{"kind": "openai", "base_url": …, "model": …}` (never a key).
    pub backend: serde_json::Value,
    /// Processes the stage ran as.
    pub shards: usize,
    /// With shards: each part, merged in this order into the stage's output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<crate::shards::PartRecord>,
}

impl Default for Produced {
    fn default() -> Self {
        Produced { backend: serde_json::json!({ "kind": "local" }), shards: 1, parts: Vec::new() }
    }
}

impl Produced {
    /// The backend in a few words, for the report.
    pub fn backend_label(&self) -> String {
        let s = |k: &str| self.backend.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        match s("kind").as_str() {
            "openai" => {
                let model = s("model");
                format!("openai {}at {}", if model.is_empty() { String::new() } else { format!("{model} ") }, s("base_url"))
            }
            "" => "local".into(),
            k => k.into(),
        }
    }
}

/// A file of a stage's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub bytes: u64,
    pub sha256: String,
}

/// `provenance.json` of a finished stage: what produced each of its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub stage: String,
    pub key: String,
    /// The version of synthdeid that ran it.
    pub synthdeid: String,
    #[serde(flatten)]
    pub produced: Produced,
    /// Every file of the stage directory (paths relative to it, `/`-separated) but `done.json`
    /// and this record.
    pub files: BTreeMap<String, FileRecord>,
}

/// Size and SHA-256 of every file under `dir` (but the stage's markers), by relative path.
fn file_records(dir: &Path) -> Result<BTreeMap<String, FileRecord>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, FileRecord>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
                continue;
            }
            let rel: Vec<String> = path.strip_prefix(root).unwrap_or(&path).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let rel = rel.join("/");
            if rel == "done.json" || rel == "provenance.json" {
                continue;
            }
            let mut f = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut bytes = 0u64;
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).with_context(|| path.display().to_string())?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                bytes += n as u64;
            }
            out.insert(rel, FileRecord { bytes, sha256: hex(&h.finalize()) });
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// Registers the stage directory `dir` under `family` in `stages_root/samples-FAMILY.txt` (one
/// directory name a line) and returns the `shards` directories of the others registered there.
/// A family is the generate stages whose samples are interchangeable: the same generator, prompts
/// and settings but the number of samples per prompt and the batch size, which a sample's text
/// does not depend on. So a cell with more samples per prompt takes the ones a sibling already
/// drew (the volume ablation's 1× → 2× → 4× costs the largest cell's generation only).
pub fn sample_siblings(stages_root: &Path, family: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let index = stages_root.join(format!("samples-{}.txt", &family[..family.len().min(12)]));
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = match std::fs::read_to_string(&index) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| index.display().to_string()),
    };
    let mut names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if !names.contains(&name) {
        names.push(name.clone());
        std::fs::create_dir_all(stages_root).with_context(|| stages_root.display().to_string())?;
        fsutil::atomic_write(&index, (names.join("\n") + "\n").as_bytes()).map_err(anyhow::Error::msg)?;
    }
    Ok(names.iter().filter(|n| **n != name).map(|n| stages_root.join(n).join("shards")).filter(|d| d.is_dir()).collect())
}

/// Hands the memory a finished stage freed back to the system. glibc keeps freed blocks below
/// its mmap threshold in its arenas: after Gemma-3-270M LoRA steps the process held 5.6 GB, of
/// which 1.1 GB was the model (`malloc_trim`: 0.4 s), and a pipeline kept that through generation
/// and NER training, where a second job on the machine needed it.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it returns free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The stage's `provenance.json`, if it has one.
pub fn read_provenance(dir: &Path) -> Option<Provenance> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).ok()?).ok()
}

/// Runs `work(dir)` unless `dir/done.json` exists (and `force` is false). `work` must leave its
/// outputs in `dir` and may find a partial earlier attempt there to resume from.
pub fn run_stage(stages_root: &Path, key: &StageKey, force: bool, work: impl FnOnce(&Path) -> Result<()>) -> Result<(PathBuf, StageTiming)> {
    run_stage_recorded(stages_root, key, force, |dir| work(dir).map(|()| Produced::default()))
}

/// [`run_stage`] for a stage that says what produced it (its backend, its shards): recorded, with
/// every file's size and hash, in `provenance.json` before the stage is marked done.
pub fn run_stage_recorded(stages_root: &Path, key: &StageKey, force: bool, work: impl FnOnce(&Path) -> Result<Produced>) -> Result<(PathBuf, StageTiming)> {
    let dir = key.dir(stages_root);
    let marker = dir.join("done.json");
    if force && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {} for --force", dir.display()))?;
    }
    let timing = |cached: bool, seconds: f64, produced: Option<&Produced>| StageTiming {
        stage: key.stage.into(),
        key: key.hash.clone(),
        cached,
        seconds,
        shards: produced.map(|p| p.shards),
        backend: produced.map(Produced::backend_label),
    };
    if marker.exists() {
        let done: DoneMarker = serde_json::from_str(&std::fs::read_to_string(&marker)?).with_context(|| marker.display().to_string())?;
        let provenance = read_provenance(&dir);
        return Ok((dir.clone(), timing(true, done.seconds, provenance.as_ref().map(|p| &p.produced))));
    }
    std::fs::create_dir_all(&dir)?;
    let t0 = Instant::now();
    let produced = work(&dir).with_context(|| format!("stage {} ({})", key.stage, dir.display()));
    release_freed_memory();
    let produced = produced?;
    let seconds = t0.elapsed().as_secs_f64();
    let provenance = Provenance {
        stage: key.stage.into(),
        key: key.hash.clone(),
        synthdeid: env!("CARGO_PKG_VERSION").into(),
        produced,
        files: file_records(&dir)?,
    };
    fsutil::atomic_write(&dir.join("provenance.json"), serde_json::to_string_pretty(&provenance)?.as_bytes()).map_err(anyhow::Error::msg)?;
    let done = DoneMarker { stage: key.stage.into(), key: key.hash.clone(), seconds };
    fsutil::atomic_write(&marker, serde_json::to_string_pretty(&done)?.as_bytes()).map_err(anyhow::Error::msg)?;
    Ok((dir, timing(false, seconds, Some(&provenance.produced))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct Old {
        a: u32,
        inner: Inner,
    }
    #[derive(Serialize, Default)]
    struct Inner {
        x: f64,
    }
    #[derive(Serialize, Default)]
    struct New {
        a: u32,
        inner: InnerNew,
        added: bool,
    }
    #[derive(Serialize, Default)]
    struct InnerNew {
        x: f64,
        y: Option<u8>,
    }

    #[test]
    fn keys_ignore_settings_left_at_their_defaults() {
        let old = Old { a: 3, inner: Inner { x: 0.5 } };
        let new = New { a: 3, inner: InnerNew { x: 0.5, y: None }, added: false };
        let k_old = StageKey::of_settings("s", &old, &Old::default(), &["in"]);
        assert_eq!(k_old, StageKey::of_settings("s", &new, &New::default(), &["in"]));
        // A setting that matters still changes the key, as do the inputs.
        let changed = New { added: true, ..new };
        assert_ne!(k_old, StageKey::of_settings("s", &changed, &New::default(), &["in"]));
        let nested = New { inner: InnerNew { x: 0.5, y: Some(1) }, ..Default::default() };
        assert_ne!(StageKey::of_settings("s", &nested, &New::default(), &["in"]), StageKey::of_settings("s", &New::default(), &New::default(), &["in"]));
        assert_ne!(k_old, StageKey::of_settings("s", &old, &Old::default(), &["other"]));
    }

    #[test]
    fn a_stage_revision_changes_its_key_and_revision_0_keeps_old_keys() {
        // The key as it was computed before revisions existed.
        let mut h = Sha256::new();
        h.update(b"annotator");
        h.update([0]);
        h.update(serde_json::to_vec(&serde_json::json!({"a": 1})).unwrap());
        h.update([0]);
        h.update(b"in");
        let before = hex(&h.finalize());
        let settings = serde_json::json!({"a": 1});
        assert_eq!(StageKey::with_revision("annotator", 0, &settings, &["in"]).hash, before);
        assert_ne!(StageKey::with_revision("annotator", 1, &settings, &["in"]).hash, before);
        assert_ne!(StageKey::with_revision("annotator", 1, &settings, &["in"]), StageKey::with_revision("annotator", 2, &settings, &["in"]));
    }

    #[test]
    fn every_stage_of_the_pipeline_has_a_revision() {
        // A stage missing from the table could never be bumped.
        let src = include_str!("run.rs");
        let mut named = 0;
        for pat in ["StageKey::of_settings(\"", "StageKey::new(\""] {
            for (i, _) in src.match_indices(pat) {
                let rest = &src[i + pat.len()..];
                let stage = &rest[..rest.find('"').unwrap()];
                assert!(STAGE_REVISIONS.iter().any(|(s, _)| *s == stage), "stage `{stage}` is not in STAGE_REVISIONS");
                named += 1;
            }
        }
        assert!(named >= STAGE_REVISIONS.len(), "run.rs names {named} stage keys");
    }
}
