//! NCSN++ / DDPM++ score network (`NCSNpp`, score_sde_pytorch `models/ncsnpp.py`; Song et al.
//! 2021, "Score-Based Generative Modeling through Stochastic Differential Equations", ICLR,
//! Appendix H).
//!
//! A U-Net `F_θ(x, c)` conditioned on one scalar per sample:
//! * embedding: Gaussian Fourier features `[sin 2π log(c)W, cos 2π log(c)W]` (`fourier`, VE,
//!   `c = σ`) or the sinusoidal embedding of `c` (`positional`, VP, `c = 999·t`), then
//!   `Dense(act(Dense(emb)))` when `conditional`;
//! * `x ↦ 2x − 1` unless `data.centered` (the image channels only: `data.extra_input_channels`
//!   conditioning channels after them, e.g. a patch model's positions, enter as they are, and
//!   the output has the image channels);
//! * down path of `num_res_blocks` residual blocks per level (+ attention at
//!   `attn_resolutions`), resampling by a BigGAN block or a `Downsample`, optional input
//!   pyramid (`input_skip` via `Combine`, or `residual`); middle ResBlock–Attn–ResBlock; up
//!   path of `num_res_blocks + 1` blocks per level on skip concatenations, optional output
//!   pyramid (`output_skip` heads summed through FIR/nearest upsampling, or `residual`);
//! * `GroupNorm → act → conv3x3` head (unless `output_skip`), and `/σ` with `scale_by_sigma`
//!   (σ = c for Fourier, `sigmas[⌊c⌋]` of the geometric σ table for positional).
//!
//! Deviations from upstream, all where upstream cannot run or is ambiguous: non-FIR `Upsample`
//! is nearest 2× (upstream's call raises); FIR `Upsample` with a conv flips the weights with
//! `flip` and uses stride 2 / output_padding 0 (upstream's negative-step slice and TF-style
//! stride raise in PyTorch); attention placement follows the configured levels
//! (`image_size / 2^i`), which equals upstream's run-time width test for `image_size` inputs;
//! with positional embedding and `scale_by_sigma` the output keeps the input dtype (upstream
//! promotes to float64 through its float64 `sigmas` buffer).
//!
//! Variables live under `all_modules.<i>.…` exactly as in the PyTorch `state_dict`, so
//! [`load_safetensors`] fills a [`VarStore`] from a converted checkpoint
//! (`scripts/convert_score_sde.py`) by name.

use crate::error::{Error, Result};
use crate::models::config::{
    EmbeddingType, NcsnppArch, Progressive, ProgressiveCombine, ProgressiveInput, ResblockType,
    ScoreSdeConfig,
};
use crate::models::layers::layerspp::{
    AttnBlockpp, BlockOpts, Combine, Downsample, Fir, ResBlock, ResnetBlockBigGanpp,
    ResnetBlockDdpmpp, Upsample,
};
use crate::models::layers::{
    act, timestep_embedding, Conv2d, GaussianFourierProjection, GroupNorm, Linear,
};
use crate::models::TimeConditionedNet;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;
use tch::nn::{Path, VarStore};
use tch::{Kind, Tensor};

const SQRT2: f64 = std::f64::consts::SQRT_2;

enum DownOp {
    Block(ResBlock),
    Layer(Downsample),
}

enum InputOp {
    Skip(Combine),
    Residual(Downsample),
}

struct DownLevel {
    blocks: Vec<(ResBlock, Option<AttnBlockpp>)>,
    /// Resampling to the next level (absent on the last level) and the input-pyramid step.
    transition: Option<(DownOp, Option<InputOp>)>,
}

enum ProgOp {
    /// GroupNorm → act → conv3x3 (output_skip at every level, residual at the top level).
    Head(GroupNorm, Conv2d),
    /// residual below the top level: upsample the pyramid with a learned conv.
    ResidualUp(Upsample),
}

enum UpOp {
    Block(ResBlock),
    Layer(Upsample),
}

struct UpLevel {
    blocks: Vec<ResBlock>,
    attn: Option<AttnBlockpp>,
    prog: Option<ProgOp>,
    up: Option<UpOp>,
}

/// The NCSN++ / DDPM++ network of score_sde_pytorch.
pub struct Ncsnpp {
    arch: NcsnppArch,
    fourier: Option<GaussianFourierProjection>,
    temb: Option<(Linear, Linear)>,
    conv_in: Conv2d,
    down: Vec<DownLevel>,
    mid: (ResBlock, AttnBlockpp, ResBlock),
    /// Top (coarsest) level first, as executed.
    up: Vec<UpLevel>,
    head: Option<(GroupNorm, Conv2d)>,
    pyramid_up: Option<Upsample>,
    pyramid_down: Option<Downsample>,
    /// Geometric σ table `exp(linspace(log σ_max, log σ_min, N))` (f64), upstream's `sigmas`.
    sigmas: Tensor,
    n_modules: usize,
}

impl std::fmt::Debug for Ncsnpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ncsnpp")
            .field("arch", &self.arch)
            .field("n_modules", &self.n_modules)
            .finish()
    }
}

impl Ncsnpp {
    /// Builds the network on `root` (normally `vs.root()`); variables are created under
    /// `root / "all_modules" / i` in upstream module order, in the var store's kind and device.
    pub fn new(root: &Path, cfg: &ScoreSdeConfig) -> Result<Self> {
        let a = cfg.arch()?;
        let am = root / "all_modules";
        let mut idx = 0usize;
        let mut next = || {
            let p = &am / idx;
            idx += 1;
            p
        };
        let nf = a.nf;
        let channels = a.num_channels;
        let in_channels = a.num_channels + a.extra_input_channels;
        let levels = a.ch_mult.len();
        let all_res: Vec<i64> = (0..levels).map(|i| a.image_size >> i).collect();
        let fir = a.fir.then(|| Fir::new(&a.fir_kernel, root));
        let opts = BlockOpts {
            act: a.nonlinearity,
            dropout: a.dropout,
            skip_rescale: a.skip_rescale,
            init_scale: a.init_scale,
            temb_dim: 4 * nf,
        };

        let (fourier, embed_dim) = match a.embedding_type {
            EmbeddingType::Fourier => (
                Some(GaussianFourierProjection::new(&next(), nf, a.fourier_scale)),
                2 * nf,
            ),
            EmbeddingType::Positional => (None, nf),
        };
        let temb = if a.conditional {
            let l0 = Linear::new(&next(), embed_dim, 4 * nf);
            let l1 = Linear::new(&next(), 4 * nf, 4 * nf);
            Some((l0, l1))
        } else {
            None
        };
        let make_block =
            |p: &Path, cin: i64, cout: i64, up: bool, down: bool| -> Result<ResBlock> {
                Ok(match a.resblock_type {
                    ResblockType::Biggan => ResBlock::BigGan(ResnetBlockBigGanpp::new(
                        p,
                        cin,
                        cout,
                        up,
                        down,
                        fir.as_ref(),
                        opts,
                    )?),
                    ResblockType::Ddpm => {
                        ResBlock::Ddpm(ResnetBlockDdpmpp::new(p, cin, cout, opts)?)
                    }
                })
            };
        let make_attn = |p: &Path, c: i64| AttnBlockpp::new(p, c, a.skip_rescale, a.init_scale);

        let conv_in = Conv2d::conv3x3(&next(), in_channels, nf, 1.0);
        let mut hs_c = vec![nf];
        let mut in_ch = nf;
        let mut input_pyramid_ch = in_channels;
        let mut down = Vec::with_capacity(levels);
        for (i_level, &res) in all_res.iter().enumerate() {
            let mut blocks = Vec::with_capacity(a.num_res_blocks);
            for _ in 0..a.num_res_blocks {
                let out_ch = nf * a.ch_mult[i_level];
                let b = make_block(&next(), in_ch, out_ch, false, false)?;
                in_ch = out_ch;
                let at = if a.attn_resolutions.contains(&res) {
                    Some(make_attn(&next(), in_ch)?)
                } else {
                    None
                };
                blocks.push((b, at));
                hs_c.push(in_ch);
            }
            let transition = if i_level != levels - 1 {
                let op = match a.resblock_type {
                    ResblockType::Ddpm => DownOp::Layer(Downsample::new(
                        &next(),
                        in_ch,
                        in_ch,
                        a.resamp_with_conv,
                        fir.as_ref(),
                    )),
                    ResblockType::Biggan => {
                        DownOp::Block(make_block(&next(), in_ch, in_ch, false, true)?)
                    }
                };
                let input = match a.progressive_input {
                    ProgressiveInput::None => None,
                    ProgressiveInput::InputSkip => {
                        let cat = a.progressive_combine == ProgressiveCombine::Cat;
                        let c = Combine::new(&next(), input_pyramid_ch, in_ch, cat);
                        if cat {
                            in_ch *= 2;
                        }
                        Some(InputOp::Skip(c))
                    }
                    ProgressiveInput::Residual => {
                        let d =
                            Downsample::new(&next(), input_pyramid_ch, in_ch, true, fir.as_ref());
                        input_pyramid_ch = in_ch;
                        Some(InputOp::Residual(d))
                    }
                };
                hs_c.push(in_ch);
                Some((op, input))
            } else {
                None
            };
            down.push(DownLevel { blocks, transition });
        }

        in_ch = *hs_c.last().expect("non-empty");
        let mid = (
            make_block(&next(), in_ch, in_ch, false, false)?,
            make_attn(&next(), in_ch)?,
            make_block(&next(), in_ch, in_ch, false, false)?,
        );

        let mut pyramid_ch = 0i64;
        let mut up = Vec::with_capacity(levels);
        for i_level in (0..levels).rev() {
            let mut blocks = Vec::with_capacity(a.num_res_blocks + 1);
            for _ in 0..=a.num_res_blocks {
                let out_ch = nf * a.ch_mult[i_level];
                let skip = hs_c.pop().expect("skip channel bookkeeping");
                blocks.push(make_block(&next(), in_ch + skip, out_ch, false, false)?);
                in_ch = out_ch;
            }
            let attn = if a.attn_resolutions.contains(&all_res[i_level]) {
                Some(make_attn(&next(), in_ch)?)
            } else {
                None
            };
            let prog = match a.progressive {
                Progressive::None => None,
                Progressive::OutputSkip => {
                    let gn = GroupNorm::ncsnpp(&next(), in_ch)?;
                    let conv = Conv2d::conv3x3(&next(), in_ch, channels, a.init_scale);
                    pyramid_ch = channels;
                    Some(ProgOp::Head(gn, conv))
                }
                Progressive::Residual if i_level == levels - 1 => {
                    let gn = GroupNorm::ncsnpp(&next(), in_ch)?;
                    let conv = Conv2d::conv3x3(&next(), in_ch, in_ch, 1.0);
                    pyramid_ch = in_ch;
                    Some(ProgOp::Head(gn, conv))
                }
                Progressive::Residual => {
                    let u = Upsample::new(&next(), pyramid_ch, in_ch, true, fir.as_ref());
                    pyramid_ch = in_ch;
                    Some(ProgOp::ResidualUp(u))
                }
            };
            let upop = if i_level != 0 {
                Some(match a.resblock_type {
                    ResblockType::Ddpm => UpOp::Layer(Upsample::new(
                        &next(),
                        in_ch,
                        in_ch,
                        a.resamp_with_conv,
                        fir.as_ref(),
                    )),
                    ResblockType::Biggan => {
                        UpOp::Block(make_block(&next(), in_ch, in_ch, true, false)?)
                    }
                })
            } else {
                None
            };
            up.push(UpLevel {
                blocks,
                attn,
                prog,
                up: upop,
            });
        }
        debug_assert!(hs_c.is_empty());
        let head = if a.progressive != Progressive::OutputSkip {
            Some((
                GroupNorm::ncsnpp(&next(), in_ch)?,
                Conv2d::conv3x3(&next(), in_ch, channels, a.init_scale),
            ))
        } else {
            None
        };
        let pyramid_up = (a.progressive == Progressive::OutputSkip)
            .then(|| Upsample::new(root, 0, 0, false, fir.as_ref()));
        let pyramid_down = (a.progressive_input == ProgressiveInput::InputSkip)
            .then(|| Downsample::new(root, 0, 0, false, fir.as_ref()));
        let sigmas = Tensor::linspace(
            a.sigma_max.ln(),
            a.sigma_min.ln(),
            a.num_scales as i64,
            (Kind::Double, root.device()),
        )
        .exp();
        let n_modules = idx;
        Ok(Ncsnpp {
            arch: a,
            fourier,
            temb,
            conv_in,
            down,
            mid,
            up,
            head,
            pyramid_up,
            pyramid_down,
            sigmas,
            n_modules,
        })
    }

    /// The validated architecture.
    pub fn arch(&self) -> &NcsnppArch {
        &self.arch
    }

    /// Per-sample shape of the training data, `[num_channels, image_size, image_size]`.
    pub fn sample_shape(&self) -> Vec<i64> {
        let a = &self.arch;
        vec![a.num_channels, a.image_size, a.image_size]
    }

    /// Number of entries of upstream's `all_modules` list.
    pub fn num_modules(&self) -> usize {
        self.n_modules
    }

    /// `F_θ(x, c)` after checking shapes and values; see [`TimeConditionedNet::forward_t`].
    /// Reads `c` back to the host, so samplers should call `forward_t`.
    pub fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Result<Tensor> {
        let a = &self.arch;
        let size = x.size();
        if size.len() != 4 || size[1] != a.num_channels + a.extra_input_channels {
            return Err(Error::Shape {
                what: "NCSN++ input x".into(),
                expected: format!("[B, {}, H, W]", a.num_channels + a.extra_input_channels),
                actual: format!("{size:?}"),
            });
        }
        let div = 1i64 << (a.ch_mult.len() - 1);
        if size[2] % div != 0 || size[3] % div != 0 || size[2] == 0 || size[3] == 0 {
            return Err(Error::Shape {
                what: "NCSN++ input x".into(),
                expected: format!("H and W positive multiples of {div}"),
                actual: format!("{size:?}"),
            });
        }
        if !matches!(
            x.kind(),
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(Error::Invalid(format!(
                "NCSN++ input x must be floating point, got {:?}",
                x.kind()
            )));
        }
        let dev = self.conv_in.weight.device();
        if x.device() != dev || cond.device() != dev {
            return Err(Error::Invalid(format!(
                "NCSN++ on {dev:?}: x is on {:?} and the time condition on {:?}",
                x.device(),
                cond.device()
            )));
        }
        if cond.size() != [size[0]] {
            return Err(Error::Shape {
                what: "NCSN++ time condition".into(),
                expected: format!("[{}]", size[0]),
                actual: format!("{:?}", cond.size()),
            });
        }
        let c = cond.to_kind(Kind::Double);
        if c.isfinite().logical_not().any().int64_value(&[]) != 0 {
            return Err(Error::NonFinite("NCSN++ time condition".into()));
        }
        if x.isfinite().logical_not().any().int64_value(&[]) != 0 {
            return Err(Error::NonFinite("NCSN++ input x".into()));
        }
        match a.embedding_type {
            EmbeddingType::Fourier if c.le(0.0).any().int64_value(&[]) != 0 => {
                return Err(Error::Invalid(
                    "NCSN++ (fourier embedding): the time condition is the noise level σ and \
                     must be > 0"
                        .into(),
                ))
            }
            EmbeddingType::Positional if a.scale_by_sigma => {
                let n = a.num_scales as f64;
                if c.lt(0.0).any().int64_value(&[]) != 0 || c.ge(n).any().int64_value(&[]) != 0 {
                    return Err(Error::Invalid(format!(
                        "NCSN++ (positional, scale_by_sigma): labels index the σ table and must \
                         lie in [0, {n})"
                    )));
                }
            }
            _ => {}
        }
        Ok(self.forward_unchecked(x, cond, train))
    }

    fn act(&self, x: &Tensor) -> Tensor {
        act(self.arch.nonlinearity, x)
    }

    fn forward_unchecked(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        let a = &self.arch;
        let cond = cond.to_kind(x.kind());
        let (emb, used_sigmas) = match &self.fourier {
            Some(g) => (g.forward(&cond.log()), cond.shallow_clone()),
            None => {
                let emb = timestep_embedding(&cond, a.nf);
                let used = if a.scale_by_sigma {
                    let i = cond.to_kind(Kind::Int64).clamp(0, a.num_scales as i64 - 1);
                    self.sigmas
                        .index_select(0, &i.to_device(self.sigmas.device()))
                        .to_kind(x.kind())
                        .to_device(x.device())
                } else {
                    cond.shallow_clone()
                };
                (emb, used)
            }
        };
        let temb = self.temb.as_ref().map(|(l0, l1)| {
            let t = l0.forward(&emb);
            l1.forward(&self.act(&t))
        });
        let temb = temb.as_ref();

        let x = if a.centered {
            x.shallow_clone()
        } else if a.extra_input_channels > 0 {
            let image = x.narrow(1, 0, a.num_channels) * 2.0 - 1.0;
            Tensor::cat(
                &[image, x.narrow(1, a.num_channels, a.extra_input_channels)],
                1,
            )
        } else {
            x * 2.0 - 1.0
        };
        let mut input_pyramid =
            (a.progressive_input != ProgressiveInput::None).then(|| x.shallow_clone());

        let mut hs: Vec<Tensor> = vec![self.conv_in.forward(&x)];
        for level in &self.down {
            for (block, attn) in &level.blocks {
                let mut h = block.forward(hs.last().expect("non-empty"), temb, train);
                if let Some(at) = attn {
                    h = at.forward(&h);
                }
                hs.push(h);
            }
            if let Some((op, input)) = &level.transition {
                let last = hs.last().expect("non-empty");
                let mut h = match op {
                    DownOp::Layer(d) => d.forward(last),
                    DownOp::Block(b) => b.forward(last, temb, train),
                };
                match input {
                    None => {}
                    Some(InputOp::Skip(comb)) => {
                        let pd = self.pyramid_down.as_ref().expect("input_skip");
                        let ip = pd.forward(input_pyramid.as_ref().expect("pyramid"));
                        h = comb.forward(&ip, &h);
                        input_pyramid = Some(ip);
                    }
                    Some(InputOp::Residual(d)) => {
                        let ip = d.forward(input_pyramid.as_ref().expect("pyramid"));
                        let ip = if a.skip_rescale {
                            (ip + &h) / SQRT2
                        } else {
                            ip + &h
                        };
                        h = ip.shallow_clone();
                        input_pyramid = Some(ip);
                    }
                }
                hs.push(h);
            }
        }

        let mut h = self
            .mid
            .0
            .forward(hs.last().expect("non-empty"), temb, train);
        h = self.mid.1.forward(&h);
        h = self.mid.2.forward(&h, temb, train);

        let mut pyramid: Option<Tensor> = None;
        for level in &self.up {
            for block in &level.blocks {
                let skip = hs.pop().expect("skip bookkeeping");
                h = block.forward(&Tensor::cat(&[&h, &skip], 1), temb, train);
            }
            if let Some(at) = &level.attn {
                h = at.forward(&h);
            }
            match (&level.prog, a.progressive) {
                (None, _) => {}
                (Some(ProgOp::Head(gn, conv)), Progressive::OutputSkip) => {
                    let ph = conv.forward(&self.act(&gn.forward(&h)));
                    pyramid = Some(match pyramid {
                        None => ph,
                        Some(p) => self.pyramid_up.as_ref().expect("output_skip").forward(&p) + ph,
                    });
                }
                (Some(ProgOp::Head(gn, conv)), _) => {
                    pyramid = Some(conv.forward(&self.act(&gn.forward(&h))));
                }
                (Some(ProgOp::ResidualUp(u)), _) => {
                    let p = u.forward(pyramid.as_ref().expect("pyramid"));
                    let p = if a.skip_rescale {
                        (p + &h) / SQRT2
                    } else {
                        p + &h
                    };
                    h = p.shallow_clone();
                    pyramid = Some(p);
                }
            }
            match &level.up {
                None => {}
                Some(UpOp::Layer(u)) => h = u.forward(&h),
                Some(UpOp::Block(b)) => h = b.forward(&h, temb, train),
            }
        }
        debug_assert!(hs.is_empty());

        let h = match &self.head {
            None => pyramid.expect("output_skip pyramid"),
            Some((gn, conv)) => conv.forward(&self.act(&gn.forward(&h))),
        };
        if a.scale_by_sigma {
            h / used_sigmas.reshape([-1, 1, 1, 1])
        } else {
            h
        }
    }

    /// Builds the network for `cfg` on a new [`VarStore`] on `device` and loads
    /// `weights` (a converted score_sde_pytorch state_dict, see [`load_safetensors`]).
    pub fn load(
        cfg: &ScoreSdeConfig,
        weights: impl AsRef<FsPath>,
        device: tch::Device,
    ) -> Result<(VarStore, Ncsnpp)> {
        let vs = VarStore::new(device);
        let net = Ncsnpp::new(&vs.root(), cfg)?;
        load_safetensors(&vs, weights)?;
        Ok((vs, net))
    }
}

impl TimeConditionedNet for Ncsnpp {
    /// `F_θ(x, c)`: `c = σ` for Fourier (VE) models, `c = 999·t` for positional (VP) models.
    /// Inputs are not validated here (no host synchronisation); use [`Ncsnpp::forward`] for a
    /// checked call. Positional labels used to index the σ table are clamped to its range.
    fn forward_t(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        self.forward_unchecked(x, cond, train)
    }
}

/// Whether a safetensors entry is not a network variable: the parity fixtures' `input.*` /
/// `output.*` tensors and the `sigmas` buffer (recomputed from the config).
fn ignored_key(name: &str) -> bool {
    name == "sigmas" || name.starts_with("input.") || name.starts_with("output.")
}

/// Fills every variable of `vs` from the safetensors file `path` by name (PyTorch state_dict
/// names, e.g. `all_modules.3.Conv_0.weight`), converting dtype to the var store's.
/// Fails, naming the tensors, when any variable is missing from the file, the file holds a
/// tensor the network does not have (other than `sigmas`, `input.*`, `output.*`), or shapes
/// differ.
pub fn load_safetensors(vs: &VarStore, path: impl AsRef<FsPath>) -> Result<()> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| Error::format(path, format!("not a readable safetensors file: {e}")))?
        .into_iter()
        .collect();
    let vars = vs.variables();
    let mut problems = Vec::new();
    let names: BTreeSet<&String> = vars.keys().collect();
    for name in &names {
        match file.get(*name) {
            None => problems.push(format!("missing tensor '{name}'")),
            Some(t) => {
                let want = vars[*name].size();
                if t.size() != want {
                    problems.push(format!(
                        "tensor '{name}': expected shape {want:?}, got {:?}",
                        t.size()
                    ));
                }
            }
        }
    }
    for name in file.keys() {
        if !ignored_key(name) && !vars.contains_key(name) {
            problems.push(format!(
                "unexpected tensor '{name}' (no such network variable)"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!(
                "{} problem(s) loading NCSN++ weights: {}",
                problems.len(),
                problems.join("; ")
            ),
        });
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            let mut v = var.shallow_clone();
            v.f_copy_(&file[name])?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn small(v: serde_json::Value) -> ScoreSdeConfig {
        let mut base = serde_json::json!({
            "model": {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4]},
            "data": {"image_size": 8, "num_channels": 1}
        });
        for (k, val) in v.as_object().unwrap() {
            let obj = base[k].as_object_mut().unwrap();
            for (kk, vv) in val.as_object().unwrap() {
                obj.insert(kk.clone(), vv.clone());
            }
        }
        ScoreSdeConfig::from_json_value(&base).unwrap()
    }

    #[test]
    fn extra_input_channels_enter_uncentred_and_leave_the_image_channels() {
        // NCSN++ (VE: Fourier embedding, FIR, residual input pyramid) and DDPM++ (VP:
        // positional embedding, no FIR, no pyramids, centred data).
        let ddpmpp = serde_json::json!({
            "model": {"fir": false, "progressive": "none", "progressive_input": "none",
                      "embedding_type": "positional", "scale_by_sigma": false},
            "data": {"extra_input_channels": 2, "centered": true}});
        for (name, over, cond) in [
            (
                "ncsnpp",
                serde_json::json!({"data": {"extra_input_channels": 2}}),
                [0.5f32, 2.0],
            ),
            ("ddpmpp", ddpmpp, [3.0f32, 998.0]),
        ] {
            tch::manual_seed(0);
            let vs = VarStore::new(Device::Cpu);
            let net = Ncsnpp::new(&vs.root(), &small(over)).unwrap();
            let x = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
            let c = Tensor::from_slice(&cond);
            let y = net.forward(&x, &c, false).unwrap();
            assert_eq!(y.size(), [2, 1, 8, 8], "{name}");
            // The position channels matter, and only the image channels are mapped to [-1, 1].
            let moved = Tensor::cat(&[x.narrow(1, 0, 1), x.narrow(1, 1, 2) * 0.0], 1);
            let y0 = net.forward(&moved, &c, false).unwrap();
            assert!((&y - y0).abs().max().double_value(&[]) > 1e-6, "{name}");
            // Without the extra channels the input is refused, naming the expected shape.
            let e = net.forward(&x.narrow(1, 0, 1), &c, false).unwrap_err();
            assert!(e.to_string().contains("[B, 3, H, W]"), "{name}: {e}");
        }
    }

    #[test]
    fn fourier_w_is_saved_but_not_trained() {
        let vs = VarStore::new(Device::Cpu);
        let net = Ncsnpp::new(&vs.root(), &small(serde_json::json!({}))).unwrap();
        let vars = vs.variables();
        assert!(vars.contains_key("all_modules.0.W"));
        assert!(!vars["all_modules.0.W"].requires_grad());
        assert_eq!(vs.trainable_variables().len(), vars.len() - 1);
        // Every name sits under all_modules.<i> with i < num_modules.
        for k in vars.keys() {
            let i: usize = k.split('.').nth(1).unwrap().parse().unwrap();
            assert!(
                k.starts_with("all_modules.") && i < net.num_modules(),
                "{k}"
            );
        }
        assert_eq!(net.sample_shape(), vec![1, 8, 8]);
    }

    #[test]
    fn fresh_network_runs_and_checks_inputs() {
        let vs = VarStore::new(Device::Cpu);
        let net = Ncsnpp::new(
            &vs.root(),
            &small(serde_json::json!({"model": {"embedding_type": "positional",
                "scale_by_sigma": true, "progressive": "output_skip"}})),
        )
        .unwrap();
        let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let c = Tensor::from_slice(&[3.0f32, 998.0]);
        let y = tch::no_grad(|| net.forward(&x, &c, false)).unwrap();
        assert_eq!(y.size(), vec![2, 1, 8, 8]);
        assert!(y.isfinite().all().int64_value(&[]) == 1);
        // Labels index the σ table (num_scales 1000): 1000 is out of range.
        let bad = Tensor::from_slice(&[3.0f32, 1000.0]);
        assert!(net.forward(&x, &bad, false).is_err());
        let nan = Tensor::from_slice(&[f32::NAN, 1.0]);
        assert!(matches!(
            net.forward(&x, &nan, false),
            Err(Error::NonFinite(_))
        ));
        let odd = Tensor::rand([2, 1, 7, 8], (Kind::Float, Device::Cpu));
        assert!(matches!(
            net.forward(&odd, &c, false),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn bad_group_counts_are_config_errors() {
        let vs = VarStore::new(Device::Cpu);
        // nf 2: GroupNorm would need min(2/4, 32) = 0 groups.
        let e = Ncsnpp::new(&vs.root(), &small(serde_json::json!({"model": {"nf": 2}})));
        assert!(matches!(e, Err(Error::Config(_))));
    }
}
