//! The `openai` generator backend: samples come from an OpenAI-compatible completions endpoint
//! (`POST {base_url}/v1/completions`: vLLM, llama.cpp's server, TGI) instead of a local model.
//!
//! Each sample is one request with the run's sampling settings and its own seed
//! ([`crate::sample_seed`], as local generation), so a server that honours `seed` gives the same
//! sample however the requests are spread over connections, retries and resumed runs. Settings
//! that engines add with other defaults are sent neutral (`top_k` 0, `min_p` 0, repetition
//! penalties 1), so that llama-cpp-python's defaults (top-k 40, min-p 0.05, repeat penalty 1.1) do
//! not change the paper's sampling (top-p 0.95, temperature 1.0).
//!
//! Requests go out from `concurrency` threads; failures that may pass (connection lost, timeout,
//! HTTP 408/429/5xx) are retried with exponential backoff, others stop the run with a message
//! that says what is wrong. Neither the prompts, the completions nor a server's error bodies
//! (which may quote the prompt) are ever printed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use crate::sampling::SamplingConfig;

/// Where and how to reach the server. A `[generator.openai]` section of a run config, or
/// `lm generate --backend openai` flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The server's root (`http://127.0.0.1:8000`) or its API root (`http://127.0.0.1:8000/v1`).
    pub base_url: String,
    /// The model name sent with each request; empty: the one model the server lists at `/v1/models`.
    pub model: String,
    /// Name of the environment variable holding the API key (sent as a bearer token when set).
    /// The key itself is never part of a config, a stage key or a log.
    pub api_key_env: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Retries of a request that failed in a way that may pass (connection lost, timeout, HTTP
    /// 408/429/5xx), waiting 0.5 s, 1 s, 2 s, … (at most 30 s) between tries.
    pub retries: usize,
    /// Seconds one request may take in all (connect, generate, read).
    pub timeout_s: f64,
    /// Seconds to open a connection.
    pub connect_timeout_s: f64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8000".into(),
            model: String::new(),
            api_key_env: "OPENAI_API_KEY".into(),
            concurrency: 4,
            retries: 5,
            timeout_s: 600.0,
            connect_timeout_s: 10.0,
        }
    }
}

impl OpenAiConfig {
    /// The settings that decide what the server returns (its URL and the model name), the others
    /// (key variable, concurrency, retries, timeouts) at their defaults: what a stage key hashes,
    /// so that tuning how requests are sent does not make a finished stage run again.
    pub fn output_settings(&self) -> OpenAiConfig {
        OpenAiConfig { base_url: self.base_url.clone(), model: self.model.clone(), ..OpenAiConfig::default() }
    }
}

/// One finished sample: the continuation (without the prompt) and, when the server reports
/// usage, its length in the server's tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub tokens: Option<usize>,
}

/// A request to make: the caller's key for it, the prompt, the seed.
#[derive(Debug, Clone)]
pub struct Job {
    pub key: usize,
    pub prompt: String,
    pub seed: u64,
}

/// How a request failed.
enum Failure {
    /// May pass: retried (the text says what happened, without document text).
    Transient(String),
    Fatal(anyhow::Error),
}

/// A client of one OpenAI-compatible server.
pub struct OpenAiClient {
    pub config: OpenAiConfig,
    /// The model name sent (the configured one, or the one the server lists).
    pub model: String,
    completions_url: String,
    models_url: String,
    agent: ureq::Agent,
    key: Option<String>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("OpenAiClient").field("url", &self.completions_url).field("model", &self.model).finish_non_exhaustive()
    }
}

/// `{api root}/completions` and `{api root}/models`, the API root being `base_url` when it ends
/// in `/v1`, else `base_url/v1`.
pub fn endpoints(base_url: &str) -> (String, String) {
    let base = base_url.trim().trim_end_matches('/');
    let api = if base.ends_with("/v1") { base.to_string() } else { format!("{base}/v1") };
    (format!("{api}/completions"), format!("{api}/models"))
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.001, 1e7))
}

impl OpenAiClient {
    /// A client (no request yet): checks the settings and reads the key from the environment.
    pub fn new(config: &OpenAiConfig) -> Result<Self> {
        let base = config.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("openai base_url {base:?}: give the server's http:// or https:// address, e.g. http://127.0.0.1:8000");
        }
        if config.concurrency == 0 {
            bail!("openai concurrency must be at least 1");
        }
        if !(config.timeout_s > 0.0 && config.connect_timeout_s > 0.0) {
            bail!("openai timeouts must be positive seconds");
        }
        let (completions_url, models_url) = endpoints(base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(seconds(config.timeout_s)))
            .timeout_connect(Some(seconds(config.connect_timeout_s)))
            .max_idle_connections_per_host(config.concurrency.max(1))
            .user_agent("synthdeid")
            .build()
            .into();
        let key = if config.api_key_env.is_empty() { None } else { std::env::var(&config.api_key_env).ok().filter(|k| !k.is_empty()) };
        Ok(OpenAiClient { config: config.clone(), model: config.model.clone(), completions_url, models_url, agent, key })
    }

    /// [`OpenAiClient::new`], then [`OpenAiClient::check`].
    pub fn connect(config: &OpenAiConfig) -> Result<Self> {
        let mut c = Self::new(config)?;
        c.check()?;
        Ok(c)
    }

    pub fn completions_url(&self) -> &str {
        &self.completions_url
    }

    fn down(&self, what: &str) -> anyhow::Error {
        anyhow!(
            "no server answers at {} ({what}): start the OpenAI-compatible server first (e.g. `python -m llama_cpp.server --model MODEL.gguf --port 8000`, \
             `vllm serve MODEL`), or fix the base URL",
            self.config.base_url.trim()
        )
    }

    /// Asks the server for its models (`GET /v1/models`), before any sample: a server that is
    /// down, a URL that is no OpenAI-compatible API, or a missing key stops here with a message
    /// that says so. Without a configured model name, takes the one model the server lists.
    pub fn check(&mut self) -> Result<()> {
        let mut req = self.agent.get(&self.models_url);
        if let Some(k) = &self.key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(e) => return Err(self.transport_error(&e)),
        };
        let status = resp.status().as_u16();
        match status {
            200..=299 => {}
            401 | 403 => bail!("{} answered HTTP {status}: the server wants an API key; put it in the environment variable {}", self.models_url, self.key_env()),
            404 if !self.model.is_empty() => return Ok(()), // some servers list no models; the completions answer tells
            404 => bail!(
                "{} answered HTTP 404: not an OpenAI-compatible API there (no /v1/models); check the base URL (the server's root, e.g. http://127.0.0.1:8000), or name the model",
                self.models_url
            ),
            _ => bail!("{} answered HTTP {status} to GET /v1/models: is the server an OpenAI-compatible one, and healthy?", self.models_url),
        }
        let body = resp.body_mut().read_to_string().map_err(|e| anyhow!("{}: reading the answer: {e}", self.models_url))?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| anyhow!("{} answered, but not with JSON: not an OpenAI-compatible API there; check the base URL", self.models_url))?;
        let Some(data) = v.get("data").and_then(|d| d.as_array()) else {
            bail!("{} answered JSON without a `data` list of models: not an OpenAI-compatible API there; check the base URL", self.models_url);
        };
        let ids: Vec<&str> = data.iter().filter_map(|m| m.get("id").and_then(|i| i.as_str())).collect();
        if self.model.is_empty() {
            match ids.as_slice() {
                [one] => self.model = one.to_string(),
                [] => bail!("{} lists no model: name the model to use", self.models_url),
                _ => bail!("{} serves {} models ({}): name the one to use", self.models_url, ids.len(), ids.join(", ")),
            }
        }
        Ok(())
    }

    fn key_env(&self) -> &str {
        if self.config.api_key_env.is_empty() {
            "(none configured: set api_key_env)"
        } else {
            &self.config.api_key_env
        }
    }

    /// A request that failed before an HTTP answer, as an error for the user.
    fn transport_error(&self, e: &ureq::Error) -> anyhow::Error {
        match classify_transport(e) {
            Transport::Refused => self.down("connection refused"),
            Transport::NoHost => self.down("host not found"),
            Transport::Timeout => anyhow!("{}: no answer within the time limit ({e}); is the server overloaded, or the timeout too short?", self.config.base_url.trim()),
            Transport::Other => anyhow!("{}: the request failed: {e}", self.config.base_url.trim()),
        }
    }

    /// The request body of one sample.
    fn body(&self, prompt: &str, seed: u64, max_tokens: usize, s: &SamplingConfig) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "repetition_penalty": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "n": 1,
            "stream": false,
            // 31 bits: every engine takes it (llama.cpp reads a u32 whose all-ones means "random").
            "seed": seed & 0x7fff_ffff,
        })
    }

    fn attempt(&self, body: &str) -> std::result::Result<Completion, Failure> {
        let mut req = self.agent.post(&self.completions_url).header("Content-Type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                return Err(match classify_transport(&e) {
                    Transport::Refused | Transport::Timeout | Transport::Other => Failure::Transient(format!("{e}")),
                    Transport::NoHost => Failure::Fatal(self.transport_error(&e)),
                })
            }
        };
        let status = resp.status().as_u16();
        let url = &self.completions_url;
        match status {
            200..=299 => {}
            408 | 429 | 500..=599 => return Err(Failure::Transient(format!("HTTP {status}"))),
            401 | 403 => {
                return Err(Failure::Fatal(anyhow!("{url} answered HTTP {status}: the server wants an API key; put it in the environment variable {}", self.key_env())))
            }
            404 | 405 => {
                return Err(Failure::Fatal(anyhow!(
                    "{url} answered HTTP {status}: no OpenAI completions endpoint there; is the server OpenAI-compatible (vLLM, llama.cpp's server, TGI) and the base URL its root (e.g. http://127.0.0.1:8000)?"
                )))
            }
            _ => {
                return Err(Failure::Fatal(anyhow!(
                    "{url} refused the request with HTTP {status} (its answer is not shown: it may quote the prompt); check the model name ({:?}) and the sampling settings",
                    self.model
                )))
            }
        }
        let text = match resp.body_mut().read_to_string() {
            Ok(t) => t,
            Err(e) => return Err(Failure::Transient(format!("reading the answer: {e}"))),
        };
        parse_completion(&text).map_err(|what| {
            Failure::Fatal(anyhow!("{url} answered HTTP {status} but {what}: not an OpenAI-compatible completions API there; check the base URL"))
        })
    }

    /// One sample, retried as [`OpenAiConfig::retries`] says.
    pub fn complete(&self, prompt: &str, seed: u64, max_tokens: usize, sampling: &SamplingConfig) -> Result<Completion> {
        let body = self.body(prompt, seed, max_tokens, sampling).to_string();
        let mut tries = 0;
        loop {
            match self.attempt(&body) {
                Ok(c) => return Ok(c),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(what)) => {
                    if tries >= self.config.retries {
                        if what.contains("refused") || what.contains("onnection") {
                            return Err(self.down(&format!("{what}, {} tries", tries + 1)));
                        }
                        bail!("{}: {what} after {} tries; is the server healthy?", self.completions_url, tries + 1);
                    }
                    let wait = (0.5 * 2f64.powi(tries as i32)).min(30.0);
                    tracing::warn!("{}: {what}; retrying in {wait:.1} s", self.completions_url);
                    std::thread::sleep(Duration::from_secs_f64(wait));
                    tries += 1;
                }
            }
        }
    }

    /// Runs `jobs` on [`OpenAiConfig::concurrency`] threads; `on_done` gets each finished sample
    /// (on the calling thread, in the order they finish). On the first error no new request
    /// starts; the ones in flight finish and are handed over, then the error is returned.
    pub fn run_jobs(
        &self,
        jobs: &[Job],
        max_tokens: usize,
        sampling: &SamplingConfig,
        mut on_done: impl FnMut(usize, Completion) -> Result<()>,
    ) -> Result<()> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(usize, Result<Completion>)>();
        let mut first_err: Option<anyhow::Error> = None;
        std::thread::scope(|scope| {
            for _ in 0..self.config.concurrency.min(jobs.len()) {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(job) = jobs.get(i) else { break };
                        let r = self.complete(&job.prompt, job.seed, max_tokens, sampling);
                        if r.is_err() {
                            stop.store(true, Ordering::SeqCst);
                        }
                        if tx.send((job.key, r)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (key, r) in rx {
                let r = r.and_then(|c| on_done(key, c));
                if let Err(e) = r {
                    stop.store(true, Ordering::SeqCst);
                    first_err.get_or_insert(e);
                }
            }
        });
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

enum Transport {
    Refused,
    NoHost,
    Timeout,
    Other,
}

fn classify_transport(e: &ureq::Error) -> Transport {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::Io(io) if matches!(io.kind(), K::ConnectionRefused | K::ConnectionReset | K::ConnectionAborted | K::NotConnected | K::BrokenPipe | K::UnexpectedEof) => {
            Transport::Refused
        }
        ureq::Error::ConnectionFailed => Transport::Refused,
        ureq::Error::HostNotFound => Transport::NoHost,
        ureq::Error::Timeout(_) => Transport::Timeout,
        ureq::Error::Io(io) if io.kind() == K::TimedOut => Transport::Timeout,
        _ => Transport::Other,
    }
}

/// `choices[0].text` and `usage.completion_tokens` of a completions answer; else what is missing.
fn parse_completion(body: &str) -> std::result::Result<Completion, &'static str> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| "not with JSON")?;
    let text = v
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("text"))
        .and_then(|t| t.as_str())
        .ok_or("without choices[0].text")?;
    let tokens = v.get("usage").and_then(|u| u.get("completion_tokens")).and_then(|t| t.as_u64()).map(|t| t as usize);
    Ok(Completion { text: text.to_string(), tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_the_root_or_the_api_root() {
        for base in ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"] {
            assert_eq!(endpoints(base), ("http://h:1/v1/completions".into(), "http://h:1/v1/models".into()), "{base}");
        }
    }

    #[test]
    fn completions_are_parsed_and_other_json_is_refused() {
        let ok = r#"{"choices":[{"text":" x","index":0}],"usage":{"completion_tokens":3}}"#;
        assert_eq!(parse_completion(ok).unwrap(), Completion { text: " x".into(), tokens: Some(3) });
        assert_eq!(parse_completion(r#"{"choices":[{"text":""}]}"#).unwrap().tokens, None);
        assert!(parse_completion(r#"{"detail":"Not Found"}"#).is_err());
        assert!(parse_completion("<html>").is_err());
    }

    #[test]
    fn bad_settings_are_refused_before_any_request() {
        let c = |f: fn(&mut OpenAiConfig)| {
            let mut cfg = OpenAiConfig::default();
            f(&mut cfg);
            OpenAiClient::new(&cfg).map(|_| ())
        };
        assert!(c(|_| {}).is_ok());
        assert!(c(|c| c.base_url = "127.0.0.1:8000".into()).unwrap_err().to_string().contains("http://"));
        assert!(c(|c| c.concurrency = 0).is_err());
        assert!(c(|c| c.timeout_s = 0.0).is_err());
    }
}
