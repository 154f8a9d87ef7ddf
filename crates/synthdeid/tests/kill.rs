//! The kill test (issue 25): `synthdeid run` killed with SIGKILL at seeded random moments in its
//! stages (LM and NER training included), resumed each time, ends with the same synthetic corpus
//! and the same results as an uninterrupted run of the same seed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

const CONFIG: &str = r#"
[run]
name = "kill test"
seed = 5

[data]
train = "data/train.jsonl"
dev = "data/dev.jsonl"
test = "data/test.jsonl"
prompt_ratio = 0.2

[annotator]
encoder.preset = "tiny"
guide.folds = 0
decoding.boundaries = false
augment.copies = 0
ensemble.members = 1
optimizer = { epochs = 3, batch_size = 4, lr = 0.003 }
checkpoint.minutes = 0.002

[generator]
generator = "gpt2"
preset = "tiny"
epochs = 2
block_size = 64
batch_size = 4
checkpoint_minutes = 0.002

[generation]
samples_per_prompt = 2
max_new_tokens = 60

[synthetic_ner]
encoder.preset = "tiny"
guide.folds = 0
decoding.boundaries = false
augment.copies = 0
ensemble.members = 1
optimizer = { epochs = 2, batch_size = 8 }
checkpoint.minutes = 0.002

[hardening]
enabled = true
"#;

fn run(config: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synthdeid"));
    c.args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// The stages finished so far (their cache directories hold a done marker).
fn finished_stages(out: &Path) -> usize {
    std::fs::read_dir(out.join("stages")).map_or(0, |d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().join("done.json").exists())).count())
}

/// `results.json` without timings (they differ between runs by nature).
fn results(out: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !["timings", "seconds", "minutes", "wall_seconds", "tokens_per_sec", "created"].contains(&k.as_str()));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    pipeline::builtin::write_demo(d, 30, 3).unwrap();
    let config = d.join("kill.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let whole = d.join("whole");
    assert!(run(&config, &whole).status().unwrap().success(), "the uninterrupted run failed");
    let stages = finished_stages(&whole);

    // Each stage's time in the uninterrupted run, in order.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(whole.join("results.json")).unwrap()).unwrap();
    let timings = v.pointer("/cells/0/timings").or_else(|| v.get("timings")).and_then(|t| t.as_array()).expect("timings in results.json").clone();
    let seconds: Vec<f64> = timings.iter().map(|t| t["seconds"].as_f64().unwrap()).collect();
    assert_eq!(seconds.len(), stages);

    // Kill runs and resume them (`kill_and_resume`) until kills have landed in at least half of
    // the stages: a kill aimed at a stage lands in a later one when the machine runs faster than
    // in the uninterrupted run, which tests less but never wrongly. Every killed-and-resumed run
    // must end with the uninterrupted run's output.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
    let mut hit = std::collections::BTreeSet::new();
    let read = |p: &Path| std::fs::read(p).unwrap();
    for attempt in 0..5 {
        let killed = d.join(format!("killed-{attempt}"));
        let kills = kill_and_resume(&config, &killed, &seconds, &mut rng);
        eprintln!("attempt {attempt}: {} kills, each after this many of the {stages} stages had finished: {kills:?}", kills.len());
        hit.extend(kills);
        assert!(read(&whole.join("synthetic.jsonl")) == read(&killed.join("synthetic.jsonl")), "the synthetic corpus differs after the kills");
        assert_eq!(results(&whole), results(&killed), "results differ after the kills");
        if hit.len() * 2 >= stages {
            return;
        }
    }
    panic!("kills fell in too few of the {stages} stages: {hit:?}");
}

/// For every stage in turn: runs until the stages before it are done, then kills (SIGKILL) at a
/// seeded random moment within its time in the uninterrupted run (`seconds`); resumes with the
/// next, until a run finishes. Training stages checkpoint often here, so kills also land between
/// checkpoints of a resumed training. Returns, per kill, how many stages had finished.
fn kill_and_resume(config: &Path, killed: &Path, seconds: &[f64], rng: &mut impl Rng) -> Vec<usize> {
    let stages = seconds.len();
    let mut kills = Vec::new();
    let mut stage = 0;
    loop {
        let mut child = run(config, killed).spawn().unwrap();
        let mut kill_at: Option<Instant> = None;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let done = finished_stages(killed);
            if kill_at.is_none() && stage < stages && done >= stage {
                stage = done;
                kill_at = Some(Instant::now() + Duration::from_secs_f64(seconds[stage.min(stages - 1)] * rng.random_range(0.05..0.6)));
            }
            if kill_at.is_some_and(|t| Instant::now() >= t) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        match status {
            Some(status) => {
                assert!(status.success(), "a resumed run failed after {} kills", kills.len());
                return kills;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills.push(finished_stages(killed));
                stage += 1;
                assert!(kills.len() < 3 * stages, "no end in sight after {} kills", kills.len());
            }
        }
    }
}
