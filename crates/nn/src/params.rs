//! Named trainable parameters.
//!
//! candle-nn's `VarMap`/`VarBuilder` initialise from the device RNG, which on CPU cannot be seeded
//! (`Device::Cpu.set_seed` errors), so runs would not be reproducible. [`Params`] keeps the
//! variables in a sorted map (deterministic iteration, stable optimizer order) and initialises them
//! from a seeded ChaCha stream.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr_shim::normal;

/// How a new parameter is filled.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Zeros,
    Ones,
    /// Normal with mean 0 and this standard deviation (HF's `initializer_range`, 0.02 for BERT).
    Normal(f64),
}

/// A set of named variables that share a device and dtype. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Params {
    vars: Arc<Mutex<BTreeMap<String, Var>>>,
    rng: Arc<Mutex<ChaCha8Rng>>,
    device: Device,
    dtype: DType,
    /// Random initialisation skipped (zeros): every value is about to be loaded from a file.
    for_loading: bool,
}

/// What a [`Params::load`] found: names of the model absent from the file (left as initialised)
/// and names of the file the model has no use for.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

impl Params {
    pub fn new(device: Device, dtype: DType, seed: u64) -> Self {
        Params {
            vars: Arc::default(),
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
            device,
            dtype,
            for_loading: false,
        }
    }

    /// Parameters whose values will all be loaded from a checkpoint: random initialisations are
    /// zeros instead (drawing hundreds of millions of normals took most of a large model's load).
    pub fn for_loading(device: Device, dtype: DType) -> Self {
        Params { for_loading: true, ..Params::new(device, dtype, 0) }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A builder that prefixes names with `prefix.`.
    pub fn pp(&self, prefix: impl AsRef<str>) -> ParamBuilder {
        ParamBuilder { params: self.clone(), prefix: prefix.as_ref().to_string() }
    }

    /// A builder without prefix.
    pub fn root(&self) -> ParamBuilder {
        ParamBuilder { params: self.clone(), prefix: String::new() }
    }

    /// Returns the variable `name`, creating it with `init` if it does not exist yet. An existing
    /// variable must have the requested shape.
    pub fn get_or_init(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let mut vars = self.vars.lock().unwrap();
        if let Some(v) = vars.get(name) {
            if v.dims() != shape {
                bail!("parameter {name}: shape {:?}, expected {:?}", v.dims(), shape);
            }
            return Ok(v.as_tensor().clone());
        }
        let n: usize = shape.iter().product();
        let init = if self.for_loading { Init::Zeros } else { init };
        if matches!(init, Init::Zeros) {
            let var = Var::zeros(shape, self.dtype, &self.device)?;
            let out = var.as_tensor().clone();
            vars.insert(name.to_string(), var);
            return Ok(out);
        }
        let data: Vec<f64> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => {
                let mut rng = self.rng.lock().unwrap();
                (0..n).map(|_| normal(&mut rng) * std).collect()
            }
        };
        let t = Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }

    /// All variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn get(&self, name: &str) -> Option<Var> {
        self.vars.lock().unwrap().get(name).cloned()
    }

    /// Total number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.vars.lock().unwrap().values().map(|v| v.elem_count()).sum()
    }

    /// Writes every variable to a safetensors file under its name, atomically (temp file, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> =
            self.vars.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        Ok(fsutil::atomic_write_with(path, |tmp| candle_core::safetensors::save(&map, tmp).map_err(std::io::Error::other))?)
    }

    /// Copies tensors from a safetensors file into the variables. `rename` maps a file name to a
    /// parameter name (or `None` to skip it), so checkpoints with another prefix or old names
    /// (`gamma`/`beta`) load. Shapes must match; dtypes are converted.
    pub fn load(&self, path: &Path, rename: impl Fn(&str) -> Option<String>) -> Result<LoadReport> {
        let tensors = candle_core::safetensors::load(path, &self.device)
            .with_context(|| format!("reading {}", path.display()))?;
        self.load_tensors(tensors, rename)
    }

    /// Like [`Params::load`], from tensors already in memory.
    pub fn load_tensors(
        &self,
        tensors: impl IntoIterator<Item = (String, Tensor)>,
        rename: impl Fn(&str) -> Option<String>,
    ) -> Result<LoadReport> {
        let vars = self.vars.lock().unwrap();
        let mut report = LoadReport::default();
        for (name, t) in tensors {
            let Some(target) = rename(&name) else {
                report.unexpected.push(name);
                continue;
            };
            match vars.get(&target) {
                Some(v) => {
                    if v.dims() != t.dims() {
                        bail!("{name}: shape {:?} in file, {:?} in model", t.dims(), v.dims());
                    }
                    v.set(&t.to_dtype(self.dtype)?)?;
                    report.loaded.push(target);
                }
                None => report.unexpected.push(name),
            }
        }
        report.missing = vars.keys().filter(|k| !report.loaded.contains(k)).cloned().collect();
        report.unexpected.sort();
        Ok(report)
    }
}

/// Creates parameters under a name prefix, HF style (`encoder.layer.0.attention.self.query`).
#[derive(Clone)]
pub struct ParamBuilder {
    params: Params,
    prefix: String,
}

impl ParamBuilder {
    pub fn pp(&self, name: impl std::fmt::Display) -> ParamBuilder {
        ParamBuilder { params: self.params.clone(), prefix: self.path(&name.to_string()) }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    pub fn get(&self, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
        self.params.get_or_init(&self.path(name), shape, init)
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn device(&self) -> &Device {
        &self.params.device
    }

    pub fn dtype(&self) -> DType {
        self.params.dtype
    }
}

/// A standard normal sample by Box-Muller, so that no extra distribution crate is needed.
mod rand_distr_shim {
    use super::*;
    pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
