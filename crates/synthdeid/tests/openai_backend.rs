//! `lm generate --backend openai` against a real OpenAI-compatible server, not a mock:
//! llama-cpp-python's server (from PyPI, in the venv `scripts/llama_server/env.sh` makes once and
//! caches) serving Gemma-3-270M's GGUF (fetched once by `models::ensure`) on 127.0.0.1.
//!
//! Checks: samples keep their prompts, ids are stable, the same seeds give the same corpus; a
//! run killed mid-way resumes without asking the server for its finished samples again (counted
//! in the server's request log); a URL that is no OpenAI API and a stopped server give errors
//! that say so; stderr never holds document text; `synthdeid run` with `[generator.openai]`
//! trains no generator and asks the server for every sample.
//!
//! Needs python3 with venv (and PyPI on the first run): without them the test FAILS, naming what
//! is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The server's venv, made by the project's script (cached after the first run).
fn server_env() -> PathBuf {
    let script = repo().join("scripts/llama_server/env.sh");
    let o = Command::new("bash").arg(&script).output().unwrap_or_else(|e| panic!("running {}: {e} (is bash installed?)", script.display()));
    assert!(
        o.status.success(),
        "{} failed: the llama.cpp server's Python environment could not be made (needs python3 with venv and PyPI):\n{}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(venv: &Path, gguf: &Path, log: PathBuf) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(venv.join("bin/python"))
            .arg(repo().join("scripts/llama_server/serve.py"))
            .args(["--model", gguf.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string(), "--n_threads", "2", "--n_ctx", "1024"])
            .stdout(err.try_clone().unwrap())
            .stderr(err)
            .spawn()
            .expect("starting the llama.cpp server");
        let mut s = Server { child, port, log };
        let t = Instant::now();
        loop {
            if let Some(status) = s.child.try_wait().unwrap() {
                panic!("the llama.cpp server exited ({status}) before answering; its log:\n{}", tail(&s.log));
            }
            if get(port, "/v1/models").is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200")) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(180), "the llama.cpp server did not answer in 180 s; its log:\n{}", tail(&s.log));
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Completion requests the server has logged so far.
    fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().matches("\"POST /v1/completions HTTP/1.1\" 200").count()
    }

    /// [`Server::requests`] once it has stopped changing (requests of a killed client finish).
    fn settled_requests(&self) -> usize {
        let mut last = self.requests();
        loop {
            std::thread::sleep(Duration::from_millis(1000));
            let now = self.requests();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

fn tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    s.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

fn synthdeid() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthdeid"))
}

fn generate_args(url: &str, prompts: &Path, out: &Path, samples: usize, max_tokens: usize) -> Vec<String> {
    [
        "lm", "generate", "--backend", "openai", "--base-url", url, "--prompts", prompts.to_str().unwrap(), "--out", out.to_str().unwrap(),
        "--samples-per-prompt", &samples.to_string(), "--max-new-tokens", &max_tokens.to_string(), "--seed", "7", "--concurrency", "2",
        "--retries", "1", "--no-progress",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(args: &[String]) -> Output {
    synthdeid().args(args).output().expect("binary runs")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Made-up notes (no real data); their first 3 words are the prompts.
const NOTES: [(&str, &str); 3] = [
    ("n1", "Paciente varón de 67 años que acude por dolor torácico."),
    ("n2", "Mujer de 45 años con antecedentes de asma bronquial."),
    ("n3", "Se trata de un niño de 8 años remitido desde pediatría."),
];

#[test]
fn openai_backend_against_llama_cpp_server() {
    let venv = server_env();
    let model = models::ensure("gemma-3-270m").unwrap_or_else(|e| panic!("fetching gemma-3-270m: {e:#}"));
    let gguf = model.join("model.gguf");
    assert!(gguf.is_file(), "{}: no model.gguf", model.display());
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("notes.jsonl");
    let lines: Vec<String> = NOTES.iter().map(|(id, t)| serde_json::json!({"id": id, "text": t, "spans": []}).to_string()).collect();
    std::fs::write(&prompts, lines.join("\n") + "\n").unwrap();
    let prompt_of = |id: &str| NOTES.iter().find(|(n, _)| id.starts_with(&format!("{n}__s"))).map(|(_, t)| t.split(' ').take(3).collect::<Vec<_>>().join(" ")).unwrap();

    let server = Server::start(&venv, &gguf, dir.path().join("server.log"));
    let t0 = Instant::now();

    // 1. Samples keep their prompts, one document per sample, stable ids, in prompt order.
    let out = dir.path().join("a.jsonl");
    let o = run(&generate_args(&server.url(), &prompts, &out, 2, 12));
    assert!(o.status.success(), "lm generate --backend openai failed: {}", err(&o));
    let docs = read_jsonl(&out);
    let ids: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["n1__s000", "n1__s001", "n2__s000", "n2__s001", "n3__s000", "n3__s001"]);
    for d in &docs {
        let (id, text) = (d["id"].as_str().unwrap(), d["text"].as_str().unwrap());
        assert!(text.starts_with(&prompt_of(id)), "{id} does not start with its prompt");
        assert!(text.len() > prompt_of(id).len(), "{id}: nothing generated");
    }
    assert_ne!(docs[0]["text"], docs[1]["text"], "two samples of one prompt (different seeds) are the same");
    assert!(!dir.path().join("a.jsonl.partial.jsonl").exists(), "the journal is left behind");
    assert!(!err(&o).contains("Paciente") && !err(&o).contains("Mujer de"), "stderr holds document text: {}", err(&o));
    assert_eq!(server.settled_requests(), 6);

    // 2. A run killed mid-way resumes: the finished samples are not requested again, and the
    // corpus equals an uninterrupted run's (the server honours the per-sample seeds).
    let (samples, max_tokens) = (4, 24);
    let full = dir.path().join("full.jsonl");
    let o = run(&generate_args(&server.url(), &prompts, &full, samples, max_tokens));
    assert!(o.status.success(), "{}", err(&o));
    let killed = dir.path().join("killed.jsonl");
    let journal = dir.path().join("killed.jsonl.partial.jsonl");
    let mut child = synthdeid().args(generate_args(&server.url(), &prompts, &killed, samples, max_tokens)).stderr(Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal).map(|s| s.lines().count()).unwrap_or(0);
        if lines > 3 {
            break; // header + 3 samples
        }
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed: make it longer");
        assert!(t.elapsed() < Duration::from_secs(60), "no sample journaled in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.exists(), "a killed run wrote its output");
    let before = server.settled_requests();
    let finished = std::fs::read_to_string(&journal).unwrap().lines().count() - 1;
    assert!(finished >= 3 && finished < 3 * samples, "{finished} samples journaled");
    let o = run(&generate_args(&server.url(), &prompts, &killed, samples, max_tokens));
    assert!(o.status.success(), "resuming failed: {}", err(&o));
    assert!(err(&o).contains(&format!("{} generated, {finished} resumed", 3 * samples - finished)), "{}", err(&o));
    assert_eq!(server.settled_requests() - before, 3 * samples - finished, "the resumed run asked for finished samples again");
    assert_eq!(std::fs::read(&killed).unwrap(), std::fs::read(&full).unwrap(), "the resumed corpus differs from an uninterrupted run's");
    assert!(!journal.exists());

    // 3. Not an OpenAI API at that URL.
    let o = run(&generate_args(&format!("{}/not-the-api", server.url()), &prompts, &dir.path().join("x.jsonl"), 1, 4));
    assert!(!o.status.success());
    assert!(err(&o).contains("not an OpenAI-compatible API"), "{}", err(&o));
    // 4. The pipeline with `[generator.openai]`: no generator is trained, the generate stage asks
    // the server (one request a sample), and the run goes on to its report.
    let data = dir.path().join("pipe");
    pipeline::builtin::write_demo(&data, 30, 3).unwrap();
    let config = format!(
        "[run]\nname = \"openai\"\nseed = 5\n[data]\ntrain = \"data/train.jsonl\"\ndev = \"data/dev.jsonl\"\ntest = \"data/test.jsonl\"\nprompt_ratio = 0.2\n\
         [models]\nannotator = \"perceptron\"\nsynthetic_ner = \"perceptron\"\n[perceptron]\nepochs = 2\n\
         [generator.openai]\nbase_url = \"{}\"\nconcurrency = 2\n[generation]\nsamples_per_prompt = 2\nmax_new_tokens = 12\n",
        server.url()
    );
    std::fs::write(data.join("openai.toml"), config).unwrap();
    let before = server.requests();
    let out = data.join("run");
    let o = synthdeid().args(["run", data.join("openai.toml").to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "synthdeid run with [generator.openai] failed: {}", err(&o));
    let synthetic = read_jsonl(&out.join("synthetic.jsonl"));
    assert!(!synthetic.is_empty() && synthetic.len().is_multiple_of(2), "{} samples: 2 per prompt document expected", synthetic.len());
    assert!(synthetic.iter().all(|d| d["id"].as_str().is_some_and(|i| i.ends_with("__s000") || i.ends_with("__s001"))));
    assert_eq!(server.settled_requests() - before, synthetic.len(), "one request a sample");
    assert!(out.join("results.json").exists() && out.join("report.html").exists());
    let stages: Vec<String> = std::fs::read_dir(out.join("stages")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let gen_stage = stages.iter().find(|s| s.starts_with("generator-")).expect("a generator stage");
    assert!(out.join("stages").join(gen_stage).join("server.json").exists() && !out.join("stages").join(gen_stage).join("model").exists());
    eprintln!("openai backend test: {:.1} s with the server up", t0.elapsed().as_secs_f64());

    // 5. The server stopped: a clear error naming the URL.
    let url = server.url();
    drop(server);
    let o = run(&generate_args(&url, &prompts, &dir.path().join("y.jsonl"), 1, 4));
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains(&format!("no server answers at {url}")) && e.contains("start the OpenAI-compatible server"), "{e}");
    assert!(!dir.path().join("y.jsonl").exists());
}
