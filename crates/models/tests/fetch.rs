//! The fetch flow on fake packages, without the network: small wheels built here and a "pip" that is
//! a shell script copying them into the `-d` directory (and logging each call). One real fetch, ignored.

use models::{fetch_with, FetchOptions, Layout, Member, ModelSpec, Output, Package, SumsFile};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const PART_A: &[u8] = b"GGUF first part, ";
const PART_B: &[u8] = b"second part, ";
const PART_C: &[u8] = b"third part.";
const NOTICE: &[u8] = b"Fake terms of use.\n";

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn joined() -> Vec<u8> {
    [PART_A, PART_B, PART_C].concat()
}

/// A spec over the fake packages: `model.gguf` joined from three part packages (listed out of
/// alphabetical order, to see that the spec's order is kept), and a notice with a checksum file.
fn fake_spec(model_sha: &str) -> &'static ModelSpec {
    let member = |package: &'static str, path: &'static str| Member { package, path };
    let model_sha: &'static str = Box::leak(model_sha.to_string().into_boxed_str());
    let notice_sha: &'static str = Box::leak(sha(NOTICE).into_boxed_str());
    leak(ModelSpec {
        name: "fake-model",
        kind: "causal LM, GGUF Q4_K_M",
        license: "Fake Terms",
        license_files: &["NOTICE.md"],
        upstream: "nowhere/fake",
        packages: leak([
            Package { name: "fake-model", version: "1.0.0" },
            Package { name: "fake-model-part2", version: "1.0.0" },
            Package { name: "fake-model-part1", version: "1.0.0" },
            Package { name: "fake-model-part3", version: "1.0.0" },
        ]),
        pip_args: &[],
        outputs: leak([
            Output {
                file: "model.gguf",
                parts: leak([
                    member("fake-model-part2", "fake_model_part2/data/x.part00"),
                    member("fake-model-part1", "fake_model_part1/data/x.part01"),
                    member("fake-model-part3", "fake_model_part3/data/x.part02"),
                ]),
                bytes: joined().len() as u64,
                sha256: model_sha,
            },
            Output {
                file: "NOTICE.md",
                parts: leak([member("fake-model", "fake_model/data/NOTICE.md")]),
                bytes: NOTICE.len() as u64,
                sha256: notice_sha,
            },
        ]),
        sums: Some(SumsFile { member: member("fake-model", "fake_model/data/SHA256SUMS"), entry: "x.gguf", output: "model.gguf" }),
        layout: Layout::Files,
    })
}

fn write_wheel(path: &Path, files: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// A temp dir with `wheels/` (the fake index), `pip.sh` and `models/` (the target).
struct Fake {
    tmp: tempfile::TempDir,
}

impl Fake {
    fn new(sums_sha: &str) -> Fake {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        fs::create_dir(&wheels).unwrap();
        // Stored as part1 = second piece and part2 = first piece: the spec's member order, not the
        // package names, decides the join.
        write_wheel(&wheels.join("fake_model_part2-1.0.0-py3-none-any.whl"), &[("fake_model_part2/data/x.part00", PART_A)]);
        write_wheel(&wheels.join("fake_model_part1-1.0.0-py3-none-any.whl"), &[("fake_model_part1/data/x.part01", PART_B)]);
        write_wheel(&wheels.join("fake_model_part3-1.0.0-py3-none-any.whl"), &[("fake_model_part3/data/x.part02", PART_C)]);
        let sums = format!("{sums_sha}  x.gguf\n");
        write_wheel(
            &wheels.join("fake_model-1.0.0-py3-none-any.whl"),
            &[("fake_model/__init__.py", b""), ("fake_model/data/NOTICE.md", NOTICE), ("fake_model/data/SHA256SUMS", sums.as_bytes())],
        );
        let script = "#!/bin/sh\n\
            src=\"$1\"; log=\"$2\"; shift 2\n\
            echo \"$@\" >> \"$log\"\n\
            while [ $# -gt 0 ]; do if [ \"$1\" = -d ]; then dest=\"$2\"; fi; shift; done\n\
            for w in \"$src\"/*.whl; do b=$(basename \"$w\");\n\
              if [ -e \"$dest/$b\" ]; then echo \"File was already downloaded $dest/$b\"; else cp \"$w\" \"$dest/$b\"; echo \"Saved $dest/$b\"; fi\n\
            done\n";
        fs::write(tmp.path().join("pip.sh"), script).unwrap();
        Fake { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("models")
    }

    fn pip(&self) -> Vec<String> {
        let p = |x: PathBuf| x.to_string_lossy().into_owned();
        vec!["sh".into(), p(self.tmp.path().join("pip.sh")), p(self.tmp.path().join("wheels")), p(self.tmp.path().join("pip.log"))]
    }

    fn pip_calls(&self) -> usize {
        fs::read_to_string(self.tmp.path().join("pip.log")).map(|s| s.lines().count()).unwrap_or(0)
    }

    fn fetch(&self, spec: &ModelSpec, verify: bool) -> anyhow::Result<PathBuf> {
        self.fetch_with_pip(spec, verify, self.pip())
    }

    fn fetch_with_pip(&self, spec: &ModelSpec, verify: bool, pip: Vec<String>) -> anyhow::Result<PathBuf> {
        let opts = FetchOptions { verify, pip: Some(pip) };
        fetch_with(spec, &self.dir(), &opts, &mut |_| {})
    }
}

fn names_in(dir: &Path) -> HashSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn registry_is_consistent() {
    let all = models::list();
    assert_eq!(all.iter().map(|s| s.name).collect::<Vec<_>>(), ["gemma-3-270m", "qwen2.5-coder-0.5b-instruct", "multilingual-e5-small"]);
    for s in all {
        let packages: HashSet<&str> = s.packages.iter().map(|p| p.name).collect();
        assert_eq!(packages.len(), s.packages.len(), "{}: a package twice", s.name);
        assert!(s.packages.iter().all(|p| !p.version.is_empty()), "{}", s.name);
        let files: HashSet<&str> = s.outputs.iter().map(|o| o.file).collect();
        assert_eq!(files.len(), s.outputs.len(), "{}: an output twice", s.name);
        for o in s.outputs {
            assert!(!o.parts.is_empty() && o.bytes > 0, "{}/{}", s.name, o.file);
            assert!(o.sha256.len() == 64 && o.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{}/{}", s.name, o.file);
            assert!(o.parts.iter().all(|m| packages.contains(m.package)), "{}/{}: member of an unlisted package", s.name, o.file);
        }
        // Every package is used, and every license file is an output.
        let used: HashSet<&str> = s.outputs.iter().flat_map(|o| o.parts.iter().map(|m| m.package)).collect();
        assert_eq!(used, packages, "{}", s.name);
        assert!(s.license_files.iter().all(|f| files.contains(f)), "{}", s.name);
        if let Some(sums) = s.sums {
            assert!(files.contains(sums.output) && packages.contains(sums.member.package), "{}", s.name);
        }
        match s.layout {
            Layout::Files => assert!(s.kind.contains("GGUF") && files.contains("model.gguf"), "{}", s.name),
            Layout::E5Hf { weights, tokenizer } => assert!(files.contains(weights) && files.contains(tokenizer), "{}", s.name),
        }
        assert!(!s.license.is_empty() && !s.upstream.is_empty());
    }
    let gemma = models::spec("gemma-3-270m").unwrap();
    assert_eq!(gemma.outputs.iter().find(|o| o.file == "model.gguf").unwrap().bytes, 253_113_024);
    assert!(gemma.bytes() > 253_113_024);
    let err = models::spec("gpt-5").unwrap_err().to_string();
    assert!(err.contains("gemma-3-270m") && err.contains("multilingual-e5-small"), "{err}");
}

#[test]
fn joins_parts_in_order_and_records_the_source() {
    let fake = Fake::new(&sha(&joined()));
    let spec = fake_spec(&sha(&joined()));
    let out = fake.fetch(spec, false).unwrap();
    assert_eq!(out, fake.dir().join("fake-model"));
    assert_eq!(fs::read(out.join("model.gguf")).unwrap(), joined());
    assert_eq!(fs::read(out.join("NOTICE.md")).unwrap(), NOTICE);
    assert_eq!(names_in(&out), HashSet::from(["model.gguf".into(), "NOTICE.md".into(), "source.json".into()]));
    let source = models::read_source(&out).unwrap();
    assert_eq!(source.name, "fake-model");
    assert_eq!(source.license, "Fake Terms");
    assert_eq!(source.packages.len(), 4);
    assert_eq!(source.packages[1].name, "fake-model-part2");
    assert_eq!(source.packages[1].version, "1.0.0");
    let gguf = source.files.iter().find(|f| f.path == "model.gguf").unwrap();
    assert_eq!((gguf.bytes, gguf.sha256.as_str()), (joined().len() as u64, sha(&joined()).as_str()));
    assert_eq!(source.files.len(), 2);
    assert!(source.fetched.ends_with('Z') && source.fetched.len() == 20, "{}", source.fetched);
    #[cfg(unix)]
    for f in ["model.gguf", "NOTICE.md", "source.json"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777, 0o644, "{f}");
    }
    // pip was asked for exactly the pinned versions, once.
    let log = fs::read_to_string(fake.tmp.path().join("pip.log")).unwrap();
    assert!(log.contains("download --no-deps") && log.contains("fake-model-part3==1.0.0"), "{log}");
    assert_eq!(fake.pip_calls(), 1);
}

#[test]
fn checksum_mismatch_names_the_file_and_both_hashes() {
    let wrong = sha(b"something else");
    let fake = Fake::new(&wrong);
    // The registry pins the wrong hash (the package's SHA256SUMS agrees with it).
    let err = format!("{:#}", fake.fetch(fake_spec(&wrong), false).unwrap_err());
    assert!(err.contains("model.gguf") && err.contains(&wrong) && err.contains(&sha(&joined())), "{err}");
    let out = fake.dir().join("fake-model");
    assert!(!out.join("model.gguf").exists() && !out.join(".model.gguf.tmp").exists());
    assert!(!out.join("source.json").exists());
}

#[test]
fn a_checksum_file_that_disagrees_is_refused() {
    let fake = Fake::new(&sha(b"not it"));
    let err = format!("{:#}", fake.fetch(fake_spec(&sha(&joined())), false).unwrap_err());
    assert!(err.contains("SHA256SUMS") && err.contains(&sha(b"not it")), "{err}");
}

#[test]
fn a_second_fetch_returns_at_once_and_verify_rehashes() {
    let fake = Fake::new(&sha(&joined()));
    let spec = fake_spec(&sha(&joined()));
    let out = fake.fetch(spec, false).unwrap();
    let before = fs::read_to_string(out.join("source.json")).unwrap();
    fake.fetch(spec, false).unwrap();
    assert_eq!(fake.pip_calls(), 1, "an up-to-date model must not run pip");
    assert_eq!(fs::read_to_string(out.join("source.json")).unwrap(), before);

    // Same size, other bytes: only --verify notices.
    let mut damaged = joined();
    damaged[0] ^= 1;
    fs::write(out.join("model.gguf"), &damaged).unwrap();
    fake.fetch(spec, false).unwrap();
    assert_eq!(fake.pip_calls(), 1);
    fake.fetch(spec, true).unwrap();
    assert_eq!(fake.pip_calls(), 2);
    assert_eq!(fs::read(out.join("model.gguf")).unwrap(), joined());

    // Another size is noticed without --verify.
    fs::write(out.join("NOTICE.md"), b"x").unwrap();
    fake.fetch(spec, false).unwrap();
    assert_eq!(fake.pip_calls(), 3);
    assert_eq!(fs::read(out.join("NOTICE.md")).unwrap(), NOTICE);
}

#[test]
fn a_killed_join_is_resumed_from_the_downloaded_wheels() {
    let fake = Fake::new(&sha(&joined()));
    let spec = fake_spec(&sha(&joined()));
    fake.fetch(spec, false).unwrap();
    // As if killed while joining: the wheels are there, the model file is a torn temporary.
    let out = fake.dir().join("fake-model");
    fs::remove_file(out.join("source.json")).unwrap();
    fs::remove_file(out.join("model.gguf")).unwrap();
    fs::write(out.join(".model.gguf.tmp"), b"torn").unwrap();
    fs::write(out.join(".model.safetensors.tmp123"), b"torn").unwrap();
    // pip fails (offline): the wheels already downloaded are used.
    fake.fetch_with_pip(spec, false, vec!["false".into()]).unwrap();
    assert_eq!(fs::read(out.join("model.gguf")).unwrap(), joined());
    assert_eq!(names_in(&out), HashSet::from(["model.gguf".into(), "NOTICE.md".into(), "source.json".into()]));
    // pip runs again otherwise, and skips what is there.
    fs::remove_file(out.join("source.json")).unwrap();
    fake.fetch(spec, false).unwrap();
    let log = fs::read_to_string(fake.tmp.path().join("pip.log")).unwrap();
    assert_eq!(log.lines().count(), 2);
}

#[test]
fn pip_problems_say_what_to_do() {
    let fake = Fake::new(&sha(&joined()));
    let spec = fake_spec(&sha(&joined()));
    let err = format!("{:#}", fake.fetch_with_pip(spec, false, vec!["/nonexistent/pip3".into()]).unwrap_err());
    assert!(err.contains("not found") && err.contains("SYNTHDEID_PIP"), "{err}");

    let offline = fake.tmp.path().join("offline.sh");
    fs::write(&offline, "echo 'WARNING: Retrying after connection broken' >&2\necho 'NewConnectionError: Failed to establish a new connection: [Errno 111] Connection refused' >&2\nexit 1\n").unwrap();
    let err = format!("{:#}", fake.fetch_with_pip(spec, false, vec!["sh".into(), offline.to_string_lossy().into()]).unwrap_err());
    assert!(err.contains("network") && err.contains("Connection refused"), "{err}");
}

#[test]
fn a_wheel_without_the_file_is_named() {
    let fake = Fake::new(&sha(&joined()));
    write_wheel(&fake.tmp.path().join("wheels/fake_model_part3-1.0.0-py3-none-any.whl"), &[("fake_model_part3/other", b"x")]);
    let err = format!("{:#}", fake.fetch(fake_spec(&sha(&joined())), false).unwrap_err());
    assert!(err.contains("fake_model_part3-1.0.0-py3-none-any.whl") && err.contains("fake_model_part3/data/x.part02"), "{err}");
}

#[test]
fn a_damaged_wheel_is_named() {
    let fake = Fake::new(&sha(&joined()));
    // A stored (uncompressed) member with one byte flipped after the fact: its CRC-32 no longer holds.
    let wheel = fake.tmp.path().join("wheels/fake_model_part1-1.0.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("fake_model_part1/data/x.part01", opts).unwrap();
    zip.write_all(PART_B).unwrap();
    zip.finish().unwrap();
    let mut bytes = fs::read(&wheel).unwrap();
    let at = bytes.windows(PART_B.len()).position(|w| w == PART_B).unwrap();
    bytes[at] ^= 0x20;
    fs::write(&wheel, bytes).unwrap();
    let err = format!("{:#}", fake.fetch(fake_spec(&sha(&joined())), false).unwrap_err());
    assert!(err.contains("fake_model_part1-1.0.0-py3-none-any.whl") && err.contains("damaged"), "{err}");
    assert!(!fake.dir().join("fake-model/.model.gguf.tmp").exists());
}

#[test]
fn concurrent_fetches_of_one_model_take_turns() {
    let fake = Fake::new(&sha(&joined()));
    let spec = fake_spec(&sha(&joined()));
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4).map(|_| s.spawn(|| fake.fetch(spec, false))).collect();
        for r in runs {
            r.join().unwrap().unwrap();
        }
    });
    assert_eq!(fs::read(fake.dir().join("fake-model/model.gguf")).unwrap(), joined());
    assert_eq!(fake.pip_calls(), 1, "the later fetches find the model done once they get the lock");
}

/// The real thing: about 230 MB from PyPI into the default models directory.
#[test]
#[ignore = "downloads 230 MB from PyPI"]
fn fetches_gemma_3_270m_from_pypi() {
    let dir = models::ensure("gemma-3-270m").unwrap();
    let gguf = dir.join("model.gguf");
    assert_eq!(fs::metadata(&gguf).unwrap().len(), 253_113_024);
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut fs::File::open(&gguf).unwrap(), &mut magic).unwrap();
    assert_eq!(&magic, b"GGUF");
    assert!(dir.join("GEMMA_TERMS.html").is_file() && dir.join("NOTICE.md").is_file());
    let source = models::read_source(&dir).unwrap();
    assert!(source.license.contains("Gemma Terms of Use"));
}
