//! Small multilayer perceptrons trained on candle: the classifier heads on sentence embeddings
//! and the purchase model on tabular features.
//!
//! A model is an optional per-feature standardisation, then dense layers with ReLU between them
//! (none for a linear model). [`train`] fits one with AdamW on shuffled mini-batches, keeps the
//! weights of the epoch with the lowest validation loss and stops after
//! [`MlpConfig::patience`] epochs without improvement. Every random choice (initialisation,
//! shuffling, dropout masks) comes from [`MlpConfig::seed`], so a run is reproducible bit for bit
//! on the same machine.
//!
//! ```
//! use habitlens::mlp::{Data, MlpConfig, Objective, Targets, train};
//!
//! // Two features; the class is whether the first is larger.
//! let features = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3, 0.1, 0.6];
//! let targets = Targets::Classes(vec![1, 0, 1, 0]);
//! let data = Data { features: &features, width: 2, targets: &targets };
//! let config = MlpConfig { epochs: 200, lr: 0.05, ..MlpConfig::default() };
//! let trained = train(&data, None, &Objective::Softmax { class_weights: None }, &config, &mut |_| {})?;
//! let logits = trained.mlp.forward(&[0.95, 0.05])?;
//! assert!(logits[1] > logits[0]);
//! # Ok::<(), habitlens::mlp::MlpError>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::rng::SplitMix;

/// What went wrong while training, running, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum MlpError {
    /// A tensor operation failed.
    #[error("a model computation failed")]
    Compute(#[from] candle_core::Error),
    /// Inputs or targets do not have the sizes the model or the data implies.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The size expected.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// The weights file cannot be written.
    #[error("cannot write `{path}`")]
    Write {
        /// Destination.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The weights file cannot be read or is not a model written by [`Mlp::save`].
    #[error("cannot read the model weights `{path}`: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Widths of the hidden layers; empty for a linear model.
    pub hidden: Vec<usize>,
    /// Probability of zeroing a hidden activation during training (inverted dropout).
    pub dropout: f32,
    /// Most passes over the training rows.
    pub epochs: usize,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Epochs without a lower validation loss before training stops.
    pub patience: usize,
    /// Standardise each feature with the mean and standard deviation of the training rows,
    /// inside the model (so inference applies the same scaling).
    pub standardize: bool,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: Vec::new(),
            dropout: 0.0,
            epochs: 100,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 1e-4,
            patience: 8,
            standardize: false,
            seed: 42,
        }
    }
}

/// What the model is trained to predict, and so its loss.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// One class per row: softmax and cross-entropy, optionally weighting each class's rows.
    Softmax {
        /// Weight of a row of each class (for skewed labels); all 1 when `None`.
        class_weights: Option<Vec<f32>>,
    },
    /// Independent yes/no outputs: sigmoid and binary cross-entropy, optionally weighting the
    /// positive side of each output (for rare positives).
    Sigmoid {
        /// Weight of a positive target per output; all 1 when `None`.
        pos_weights: Option<Vec<f32>>,
    },
    /// Amounts: mean squared error.
    Mse,
}

/// Targets of each row.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// A class index per row, for [`Objective::Softmax`].
    Classes(Vec<u32>),
    /// `width` values per row, row-major: 0/1 for [`Objective::Sigmoid`], amounts for
    /// [`Objective::Mse`].
    Matrix {
        /// The values, rows × width.
        values: Vec<f32>,
        /// Values per row.
        width: usize,
    },
}

impl Targets {
    fn rows(&self) -> usize {
        match self {
            Self::Classes(c) => c.len(),
            Self::Matrix { values, width } => values.len() / (*width).max(1),
        }
    }
}

/// Rows of features with their targets.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    /// Features, rows × width, row-major.
    pub features: &'a [f32],
    /// Features per row.
    pub width: usize,
    /// One target per row.
    pub targets: &'a Targets,
}

impl Data<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.features.len() / self.width.max(1)
    }
}

/// Figures of one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (with dropout).
    pub train_loss: f64,
    /// Loss on the validation rows after the epoch, when there are any.
    pub val_loss: Option<f64>,
    /// Seconds the epoch took.
    pub seconds: f64,
}

/// A trained model and how training went.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The weights of the best epoch (lowest validation loss; the last epoch without
    /// validation rows).
    pub mlp: Mlp,
    /// Per-epoch figures.
    pub history: Vec<EpochStats>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// A layer's weight and bias tensors.
type Layer = (Tensor, Tensor);

/// One dense layer: `y = x Wᵀ + b`, `W` of shape (outputs, inputs).
#[derive(Debug, Clone)]
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

/// Weights of a linear map `y = x Wᵀ + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    /// `W`, outputs × inputs, row-major.
    pub weight: Vec<f32>,
    /// `b`, one per output.
    pub bias: Vec<f32>,
}

/// A trained multilayer perceptron, on the CPU.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Per-feature mean and standard deviation, each of shape (inputs,).
    scaling: Option<(Tensor, Tensor)>,
    layers: Vec<Dense>,
}

impl Mlp {
    /// A linear model `y = x Wᵀ + b` without standardisation, from `weight` (outputs × inputs,
    /// row-major) and `bias` (one per output).
    ///
    /// # Errors
    /// Fails when `weight` is not `bias.len()` whole rows.
    pub fn linear(weight: Vec<f32>, bias: Vec<f32>) -> Result<Self, MlpError> {
        let outputs = bias.len();
        if outputs == 0 || weight.is_empty() || !weight.len().is_multiple_of(outputs) {
            return Err(MlpError::Shape {
                what: "weights of a linear model".into(),
                expected: outputs,
                got: weight.len(),
            });
        }
        let inputs = weight.len() / outputs;
        let weight = Tensor::from_vec(weight, (outputs, inputs), &Device::Cpu)?;
        let bias = Tensor::from_vec(bias, outputs, &Device::Cpu)?;
        Ok(Self { scaling: None, layers: vec![Dense { weight, bias }] })
    }

    /// The model as one plain linear map `y = x Wᵀ + b`, with any standardisation folded into
    /// it; `None` when it has hidden layers.
    ///
    /// # Errors
    /// Fails when a tensor cannot be read.
    pub fn as_linear(&self) -> Result<Option<LinearWeights>, MlpError> {
        let [layer] = self.layers.as_slice() else { return Ok(None) };
        let (mut weight, mut bias) = (layer.weight.clone(), layer.bias.clone());
        if let Some((mean, std)) = &self.scaling {
            // W ((x - mean) / std) + b = (W / std) x + (b - (W / std) mean)
            weight = weight.broadcast_div(&std.unsqueeze(0)?)?;
            bias = (bias - weight.matmul(&mean.unsqueeze(1)?)?.squeeze(1)?)?;
        }
        Ok(Some(LinearWeights { weight: weight.flatten_all()?.to_vec1()?, bias: bias.to_vec1()? }))
    }

    /// Features per row.
    pub fn inputs(&self) -> usize {
        self.layers[0].weight.dims2().map_or(0, |(_, i)| i)
    }

    /// Outputs per row.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].weight.dims2().map_or(0, |(o, _)| o)
    }

    /// Widths of the hidden layers.
    pub fn hidden(&self) -> Vec<usize> {
        self.layers[..self.layers.len() - 1]
            .iter()
            .map(|l| l.weight.dims2().map_or(0, |(o, _)| o))
            .collect()
    }

    /// Raw outputs for rows of features (rows × [`Mlp::inputs`], row-major): logits for the
    /// softmax and sigmoid objectives (see [`softmax_in_place`] and [`sigmoid`]), amounts for
    /// MSE; rows × [`Mlp::outputs`].
    ///
    /// # Errors
    /// Fails when `features` is not a whole number of rows.
    pub fn forward(&self, features: &[f32]) -> Result<Vec<f32>, MlpError> {
        let inputs = self.inputs();
        if inputs == 0 || !features.len().is_multiple_of(inputs) {
            return Err(MlpError::Shape {
                what: "features per row".into(),
                expected: inputs,
                got: features.len(),
            });
        }
        let x = Tensor::from_slice(features, (features.len() / inputs, inputs), &Device::Cpu)?;
        let weights: Vec<(Tensor, Tensor)> =
            self.layers.iter().map(|l| (l.weight.clone(), l.bias.clone())).collect();
        let out = forward_layers(&x, self.scaling.as_ref(), &weights, None)?;
        Ok(out.flatten_all()?.to_vec1()?)
    }

    /// Writes the weights as safetensors (`input.mean`, `input.std` when standardising, then
    /// `layers.N.weight` and `layers.N.bias`), atomically.
    ///
    /// # Errors
    /// Fails when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), MlpError> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        if let Some((mean, std)) = &self.scaling {
            tensors.insert("input.mean".into(), mean.clone());
            tensors.insert("input.std".into(), std.clone());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            tensors.insert(format!("layers.{i}.weight"), layer.weight.clone());
            tensors.insert(format!("layers.{i}.bias"), layer.bias.clone());
        }
        let write_err = |source: Box<dyn std::error::Error + Send + Sync>| MlpError::Write {
            path: path.to_path_buf(),
            source,
        };
        // Serialised in memory and written through AtomicFile: the safetensors crate's own
        // file writer renames an owner-only temporary file into place.
        let bytes = safetensors::serialize(&tensors, None).map_err(|e| write_err(e.into()))?;
        let mut file = crate::output::AtomicFile::create(path).map_err(|e| write_err(e.into()))?;
        std::io::Write::write_all(&mut file, &bytes).map_err(|e| write_err(e.into()))?;
        file.commit().map_err(|e| write_err(e.into()))
    }

    /// Reads weights written by [`Mlp::save`].
    ///
    /// # Errors
    /// Fails when the file cannot be read or does not hold a consistent model.
    pub fn load(path: &Path) -> Result<Self, MlpError> {
        let read_err = |reason: String| MlpError::Read { path: path.to_path_buf(), reason };
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| read_err(e.to_string()))?;
        let scaling = match (tensors.remove("input.mean"), tensors.remove("input.std")) {
            (Some(mean), Some(std)) => Some((mean, std)),
            (None, None) => None,
            _ => return Err(read_err("`input.mean` and `input.std` come together".into())),
        };
        let mut layers = Vec::new();
        while let Some(weight) = tensors.remove(&format!("layers.{}.weight", layers.len())) {
            let bias = tensors
                .remove(&format!("layers.{}.bias", layers.len()))
                .ok_or_else(|| read_err(format!("`layers.{}.bias` is missing", layers.len())))?;
            layers.push(Dense { weight: weight.to_dtype(DType::F32)?, bias });
        }
        if layers.is_empty() {
            return Err(read_err("it holds no `layers.0.weight`".into()));
        }
        if let Some(name) = tensors.keys().next() {
            return Err(read_err(format!("unexpected tensor `{name}`")));
        }
        // Each layer must take what the previous one gives.
        let mut width = layers[0].weight.dims2().map_err(|e| read_err(e.to_string()))?.1;
        for (i, layer) in layers.iter().enumerate() {
            let (out, inp) = layer.weight.dims2().map_err(|e| read_err(e.to_string()))?;
            if inp != width || layer.bias.dims() != [out] {
                return Err(read_err(format!("layer {i} does not fit the layer before it")));
            }
            width = out;
        }
        Ok(Self { scaling, layers })
    }
}

/// Turns each row of `width` logits into probabilities, in place.
pub fn softmax_in_place(rows: &mut [f32], width: usize) {
    for row in rows.chunks_exact_mut(width.max(1)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

/// The logistic function: a logit to a probability.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Standardisation, dense layers with ReLU between them, and (in training) dropout masks on
/// the hidden activations.
fn forward_layers(
    x: &Tensor,
    scaling: Option<&(Tensor, Tensor)>,
    layers: &[(Tensor, Tensor)],
    masks: Option<&[Tensor]>,
) -> candle_core::Result<Tensor> {
    let mut x = match scaling {
        Some((mean, std)) => x.broadcast_sub(mean)?.broadcast_div(std)?,
        None => x.clone(),
    };
    for (i, (weight, bias)) in layers.iter().enumerate() {
        x = x.matmul(&weight.t()?)?.broadcast_add(bias)?;
        if i + 1 < layers.len() {
            x = x.relu()?;
            if let Some(masks) = masks {
                x = (x * &masks[i])?;
            }
        }
    }
    Ok(x)
}

/// Checks that `data` fits `inputs` features and the objective, and returns the output width.
fn check(data: &Data, inputs: usize, objective: &Objective, what: &str) -> Result<usize, MlpError> {
    let shape = |detail: &str, expected: usize, got: usize| MlpError::Shape {
        what: format!("{what} {detail}"),
        expected,
        got,
    };
    if data.width != inputs || !data.features.len().is_multiple_of(inputs.max(1)) {
        return Err(shape("features per row", inputs, data.width));
    }
    if data.targets.rows() != data.rows() {
        return Err(shape("targets", data.rows(), data.targets.rows()));
    }
    Ok(match (objective, data.targets) {
        (Objective::Softmax { .. }, Targets::Classes(c)) => {
            c.iter().copied().max().map_or(0, |m| m as usize + 1)
        }
        (Objective::Sigmoid { .. } | Objective::Mse, Targets::Matrix { width, .. }) => *width,
        _ => return Err(shape("target kind (classes for softmax, a matrix otherwise)", 0, 1)),
    })
}

/// Per-feature mean and standard deviation of `data` (a standard deviation of about 0 becomes
/// 1, so constant features pass through centred).
fn scaling_of(data: &Data) -> (Vec<f32>, Vec<f32>) {
    let (rows, width) = (data.rows().max(1), data.width);
    let mut mean = vec![0f64; width];
    let mut sq = vec![0f64; width];
    for row in data.features.chunks_exact(width) {
        for (j, &x) in row.iter().enumerate() {
            mean[j] += f64::from(x);
            sq[j] += f64::from(x) * f64::from(x);
        }
    }
    let mut std = vec![1f32; width];
    for j in 0..width {
        mean[j] /= rows as f64;
        let var = (sq[j] / rows as f64 - mean[j] * mean[j]).max(0.0);
        if var.sqrt() > 1e-6 {
            std[j] = var.sqrt() as f32;
        }
    }
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// Loss of a batch: `logits` for rows `idx` of `targets`.
fn batch_loss(
    logits: &Tensor,
    targets: &Targets,
    idx: &[usize],
    objective: &Objective,
) -> candle_core::Result<Tensor> {
    let device = logits.device();
    match (objective, targets) {
        (Objective::Softmax { class_weights }, Targets::Classes(classes)) => {
            let picked: Vec<u32> = idx.iter().map(|&i| classes[i]).collect();
            let weights: Vec<f32> = match class_weights {
                Some(w) => picked.iter().map(|&c| w[c as usize]).collect(),
                None => vec![1.0; idx.len()],
            };
            let total: f32 = weights.iter().sum();
            let target = Tensor::new(picked.as_slice(), device)?.unsqueeze(1)?;
            let weights = Tensor::new(weights.as_slice(), device)?;
            let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            let picked = log_p.gather(&target, 1)?.squeeze(1)?;
            (picked * weights)?.sum_all()?.neg()? / f64::from(total.max(f32::MIN_POSITIVE))
        }
        (Objective::Sigmoid { pos_weights }, Targets::Matrix { values, width }) => {
            let y: Vec<f32> = idx
                .iter()
                .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
                .collect();
            // With positive weight p: (1 - y) z + (1 + (p - 1) y) softplus(-z), the stable form
            // of -[p y log σ(z) + (1 - y) log(1 - σ(z))].
            let coef: Vec<f32> = y
                .iter()
                .enumerate()
                .map(|(k, &t)| 1.0 + (pos_weights.as_ref().map_or(1.0, |p| p[k % width]) - 1.0) * t)
                .collect();
            let one_minus_y: Vec<f32> = y.iter().map(|t| 1.0 - t).collect();
            let shape = (idx.len(), *width);
            let one_minus_y = Tensor::from_vec(one_minus_y, shape, device)?;
            let coef = Tensor::from_vec(coef, shape, device)?;
            let softplus_neg =
                (logits.neg()?.relu()? + logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
            ((one_minus_y * logits)? + (coef * softplus_neg)?)?.mean_all()
        }
        (Objective::Mse, Targets::Matrix { values, width }) => {
            let y: Vec<f32> = idx
                .iter()
                .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
                .collect();
            let y = Tensor::from_vec(y, (idx.len(), *width), device)?;
            (logits - y)?.sqr()?.mean_all()
        }
        _ => candle_core::bail!("the targets do not fit the objective"),
    }
}

/// Mean binary cross-entropy of `logits` against 0/1 `targets` of the same shape, in the stable
/// form (1 − y) z + softplus(−z): candle's `binary_cross_entropy_with_logit` takes the log of a
/// sigmoid, which gives NaN once a logit passes about ±17 in f32.
///
/// # Errors
/// Fails when the shapes differ.
pub fn binary_cross_entropy_with_logits(
    logits: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    let softplus_neg =
        (logits.neg()?.relu()? + logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
    ((targets.affine(-1.0, 1.0)? * logits)? + softplus_neg)?.mean_all()
}

/// Copies rows `idx` of `data` into a (rows, width) tensor.
fn gather_rows(data: &Data, idx: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let w = data.width;
    let mut x = Vec::with_capacity(idx.len() * w);
    for &i in idx {
        x.extend_from_slice(&data.features[i * w..(i + 1) * w]);
    }
    Tensor::from_vec(x, (idx.len(), w), device)
}

/// Mean loss over all rows of `data`, without dropout, weighted by batch size.
fn mean_loss(
    data: &Data,
    scaling: Option<&(Tensor, Tensor)>,
    layers: &[(Tensor, Tensor)],
    objective: &Objective,
) -> candle_core::Result<f64> {
    let all: Vec<usize> = (0..data.rows()).collect();
    let mut total = 0.0;
    for chunk in all.chunks(4096) {
        let x = gather_rows(data, chunk, &Device::Cpu)?;
        let logits = forward_layers(&x, scaling, layers, None)?;
        let loss = batch_loss(&logits, data.targets, chunk, objective)?;
        total += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
    }
    Ok(total / data.rows().max(1) as f64)
}

/// Trains a model on `train`, validating on `val` after each epoch; `on_epoch` hears each
/// epoch's figures. The output width comes from the targets (the number of classes, or the
/// matrix width).
///
/// # Errors
/// Fails when the data does not fit the objective (target kind, sizes, a class weight or a
/// positive weight per output) or a tensor operation fails.
pub fn train(
    train: &Data,
    val: Option<&Data>,
    objective: &Objective,
    config: &MlpConfig,
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<Trained, MlpError> {
    train_observed(train, val, objective, config, &mut |stats, _| on_epoch(stats))
}

/// Like [`train`], with `on_epoch` also given the model as it stands after each epoch, so a
/// caller can measure more than the loss (a classifier head's validation F1, say).
///
/// # Errors
/// As [`train`].
pub fn train_observed(
    train: &Data,
    val: Option<&Data>,
    objective: &Objective,
    config: &MlpConfig,
    on_epoch: &mut dyn FnMut(&EpochStats, &Mlp),
) -> Result<Trained, MlpError> {
    let inputs = train.width;
    let mut outputs = check(train, inputs, objective, "training data")?;
    if let Some(val) = val {
        outputs = outputs.max(check(val, inputs, objective, "validation data")?);
    }
    match objective {
        Objective::Softmax { class_weights: Some(w) } if w.len() < outputs => {
            return Err(MlpError::Shape {
                what: "class weights".into(),
                expected: outputs,
                got: w.len(),
            });
        }
        Objective::Sigmoid { pos_weights: Some(w) } if w.len() != outputs => {
            return Err(MlpError::Shape {
                what: "positive weights".into(),
                expected: outputs,
                got: w.len(),
            });
        }
        _ => {}
    }
    if train.rows() == 0 || outputs == 0 {
        return Err(MlpError::Shape { what: "training rows".into(), expected: 1, got: 0 });
    }

    let device = Device::Cpu;
    let mut rng = SplitMix::new(config.seed);
    let scaling = if config.standardize {
        let (mean, std) = scaling_of(train);
        Some((Tensor::new(mean.as_slice(), &device)?, Tensor::new(std.as_slice(), &device)?))
    } else {
        None
    };

    // PyTorch's default initialisation of a linear layer: uniform in ±1/sqrt(fan_in).
    let widths: Vec<usize> =
        std::iter::once(inputs).chain(config.hidden.iter().copied()).chain([outputs]).collect();
    let mut vars = Vec::new();
    for pair in widths.windows(2) {
        let (fan_in, fan_out) = (pair[0], pair[1]);
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut uniform = |n: usize| -> Vec<f32> {
            (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * bound).collect()
        };
        let w = Tensor::from_vec(uniform(fan_in * fan_out), (fan_out, fan_in), &device)?;
        let b = Tensor::from_vec(uniform(fan_out), fan_out, &device)?;
        vars.push((Var::from_tensor(&w)?, Var::from_tensor(&b)?));
    }
    let all_vars: Vec<Var> = vars.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
    let params =
        ParamsAdamW { lr: config.lr, weight_decay: config.weight_decay, ..Default::default() };
    let mut opt = AdamW::new(all_vars, params)?;
    let snapshot = |vars: &[(Var, Var)]| -> Vec<(Tensor, Tensor)> {
        vars.iter().map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone())).collect()
    };

    let keep = 1.0 - config.dropout.clamp(0.0, 0.95);
    let batch_size = config.batch_size.max(1);
    let mut order: Vec<usize> = (0..train.rows()).collect();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Vec<Layer>)> = None;

    for epoch in 1..=config.epochs.max(1) {
        let started = std::time::Instant::now();
        rng.shuffle(&mut order);
        let mut train_loss = 0.0;
        for batch in order.chunks(batch_size) {
            let x = gather_rows(train, batch, &device)?;
            let masks: Option<Vec<Tensor>> = if keep < 1.0 && !config.hidden.is_empty() {
                let masks = config
                    .hidden
                    .iter()
                    .map(|&h| {
                        let m: Vec<f32> = (0..batch.len() * h)
                            .map(|_| if rng.uniform() < keep { 1.0 / keep } else { 0.0 })
                            .collect();
                        Tensor::from_vec(m, (batch.len(), h), &device)
                    })
                    .collect::<candle_core::Result<_>>()?;
                Some(masks)
            } else {
                None
            };
            let layers: Vec<(Tensor, Tensor)> =
                vars.iter().map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone())).collect();
            let logits = forward_layers(&x, scaling.as_ref(), &layers, masks.as_deref())?;
            let loss = batch_loss(&logits, train.targets, batch, objective)?;
            train_loss += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
            opt.backward_step(&loss)?;
        }

        // Var::as_tensor shares storage that the optimiser updates in place, so a snapshot
        // must copy.
        let current = snapshot(&vars);
        let val_loss = match val {
            Some(val) if val.rows() > 0 => {
                Some(mean_loss(val, scaling.as_ref(), &current, objective)?)
            }
            _ => None,
        };
        let stats = EpochStats {
            epoch,
            train_loss: train_loss / train.rows() as f64,
            val_loss,
            seconds: started.elapsed().as_secs_f64(),
        };
        let model = Mlp {
            scaling: scaling.clone(),
            layers: current
                .iter()
                .map(|(w, b)| Dense { weight: w.clone(), bias: b.clone() })
                .collect(),
        };
        on_epoch(&stats, &model);
        history.push(stats);

        let score = val_loss.unwrap_or(f64::NEG_INFINITY);
        if best.as_ref().is_none_or(|(b, _, _)| score < *b || val_loss.is_none()) {
            let copied = current
                .iter()
                .map(|(w, b)| Ok((w.copy()?, b.copy()?)))
                .collect::<candle_core::Result<_>>()?;
            best = Some((score, epoch, copied));
        } else if best.as_ref().is_some_and(|(_, e, _)| epoch - e >= config.patience.max(1)) {
            tracing::debug!(epoch, "validation loss stopped improving; stopping early");
            break;
        }
    }

    let (_, best_epoch, layers) = best.expect("at least one epoch ran");
    let layers = layers.into_iter().map(|(weight, bias)| Dense { weight, bias }).collect();
    Ok(Trained { mlp: Mlp { scaling, layers }, history, best_epoch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_model_from_weights_computes_x_w_transposed_plus_b() {
        let m = Mlp::linear(vec![1.0, 2.0, 0.0, -1.0], vec![0.5, 0.0]).unwrap();
        assert_eq!((m.inputs(), m.outputs()), (2, 2));
        assert_eq!(m.forward(&[1.0, 1.0]).unwrap(), vec![3.5, -1.0]);
        assert!(Mlp::linear(vec![1.0, 2.0, 3.0], vec![0.0, 0.0]).is_err(), "not whole rows");
        assert!(Mlp::linear(vec![], vec![]).is_err());
    }

    /// Two noisy clusters in 4 dimensions, classes 0 and 1, from a fixed seed.
    fn clusters(rows: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = SplitMix::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..rows {
            let class = (i % 2) as u32;
            let centre = if class == 1 { 1.0 } else { -1.0 };
            for _ in 0..4 {
                x.push(centre + (rng.uniform() - 0.5) * 2.0);
            }
            y.push(class);
        }
        (x, y)
    }

    fn accuracy(mlp: &Mlp, x: &[f32], y: &[u32]) -> f64 {
        let logits = mlp.forward(x).unwrap();
        let correct =
            logits.chunks_exact(2).zip(y).filter(|(l, c)| u32::from(l[1] > l[0]) == **c).count();
        correct as f64 / y.len() as f64
    }

    #[test]
    fn softmax_head_learns_separable_clusters_and_validation_loss_falls() {
        let (x, y) = clusters(200, 1);
        let (vx, vy) = clusters(100, 2);
        let (t, v) = (Targets::Classes(y), Targets::Classes(vy.clone()));
        let train_data = Data { features: &x, width: 4, targets: &t };
        let val_data = Data { features: &vx, width: 4, targets: &v };
        let config = MlpConfig { epochs: 30, lr: 0.01, standardize: true, ..Default::default() };
        let objective = Objective::Softmax { class_weights: None };
        let trained =
            train(&train_data, Some(&val_data), &objective, &config, &mut |_| {}).unwrap();
        let first = trained.history[0].val_loss.unwrap();
        let kept = trained.history[trained.best_epoch - 1].val_loss.unwrap();
        assert!(kept < first * 0.5, "validation loss {first} -> {kept}");
        assert!(accuracy(&trained.mlp, &vx, &vy) > 0.95);
    }

    #[test]
    fn binary_cross_entropy_is_finite_for_confident_logits() {
        let z = Tensor::new(&[[40f32, -40.0, 0.0, 2.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[1f32, 1.0, 0.0, 1.0]], &Device::Cpu).unwrap();
        let loss = binary_cross_entropy_with_logits(&z, &y).unwrap().to_scalar::<f32>().unwrap();
        // Terms: 0, 40, ln 2, ln(1 + e^-2); their mean.
        let want = (40.0 + 2f32.ln() + (1.0 + (-2f32).exp()).ln()) / 4.0;
        assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");
    }

    #[test]
    fn as_linear_folds_standardisation_into_the_weights() {
        let (x, y) = clusters(64, 5);
        let t = Targets::Classes(y);
        let data = Data { features: &x, width: 4, targets: &t };
        let config = MlpConfig { epochs: 3, standardize: true, ..Default::default() };
        let objective = Objective::Softmax { class_weights: None };
        let mlp = train(&data, None, &objective, &config, &mut |_| {}).unwrap().mlp;
        let linear = mlp.as_linear().unwrap().expect("a linear model");
        let folded = Mlp::linear(linear.weight, linear.bias).unwrap();
        for (a, b) in mlp.forward(&x).unwrap().iter().zip(folded.forward(&x).unwrap()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let deep = MlpConfig { hidden: vec![3], ..config };
        let mlp = train(&data, None, &objective, &deep, &mut |_| {}).unwrap().mlp;
        assert!(mlp.as_linear().unwrap().is_none(), "a hidden layer cannot be folded");
    }

    #[test]
    fn same_seed_gives_identical_weights_and_save_load_round_trips() {
        let (x, y) = clusters(64, 3);
        let t = Targets::Classes(y);
        let data = Data { features: &x, width: 4, targets: &t };
        let config = MlpConfig {
            hidden: vec![8],
            dropout: 0.2,
            epochs: 5,
            standardize: true,
            ..Default::default()
        };
        let objective = Objective::Softmax { class_weights: Some(vec![1.0, 2.0]) };
        let a = train(&data, None, &objective, &config, &mut |_| {}).unwrap().mlp;
        let b = train(&data, None, &objective, &config, &mut |_| {}).unwrap().mlp;
        assert_eq!(a.forward(&x).unwrap(), b.forward(&x).unwrap());
        let other = MlpConfig { seed: 7, ..config };
        let c = train(&data, None, &objective, &other, &mut |_| {}).unwrap().mlp;
        assert_ne!(a.forward(&x).unwrap(), c.forward(&x).unwrap());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.safetensors");
        a.save(&path).unwrap();
        let loaded = Mlp::load(&path).unwrap();
        assert_eq!(loaded.forward(&x).unwrap(), a.forward(&x).unwrap());
        assert_eq!((loaded.inputs(), loaded.hidden(), loaded.outputs()), (4, vec![8], 2));
    }

    #[test]
    fn sigmoid_with_positive_weight_and_mse_fit_their_targets() {
        let (x, y) = clusters(200, 4);
        let hot: Vec<f32> = y.iter().map(|&c| c as f32).collect();
        let t = Targets::Matrix { values: hot, width: 1 };
        let data = Data { features: &x, width: 4, targets: &t };
        let config = MlpConfig { epochs: 40, lr: 0.01, ..Default::default() };
        let sig = Objective::Sigmoid { pos_weights: Some(vec![3.0]) };
        let mlp = train(&data, None, &sig, &config, &mut |_| {}).unwrap().mlp;
        let probs: Vec<f32> = mlp.forward(&x).unwrap().into_iter().map(sigmoid).collect();
        let correct = probs.iter().zip(&y).filter(|(p, c)| u32::from(**p > 0.5) == **c).count();
        assert!(correct > 190, "{correct} of 200");

        // Amount = sum of the features.
        let sums: Vec<f32> = x.chunks_exact(4).map(|r| r.iter().sum()).collect();
        let t = Targets::Matrix { values: sums.clone(), width: 1 };
        let data = Data { features: &x, width: 4, targets: &t };
        let config = MlpConfig { epochs: 150, lr: 0.05, ..config };
        let mlp = train(&data, None, &Objective::Mse, &config, &mut |_| {}).unwrap().mlp;
        let pred = mlp.forward(&x).unwrap();
        let mse: f32 =
            pred.iter().zip(&sums).map(|(p, s)| (p - s).powi(2)).sum::<f32>() / sums.len() as f32;
        assert!(mse < 0.05, "mse {mse}");
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let t = Targets::Classes(vec![0, 1]);
        let data = Data { features: &[1.0, 2.0, 3.0], width: 2, targets: &t };
        let err = train(&data, None, &Objective::Mse, &MlpConfig::default(), &mut |_| {});
        assert!(matches!(err, Err(MlpError::Shape { .. })));
        let mut probs = vec![1.0, 1.0, 0.0, 2.0];
        softmax_in_place(&mut probs, 2);
        assert!((probs[0] - 0.5).abs() < 1e-6 && probs[3] > probs[2]);
    }
}
