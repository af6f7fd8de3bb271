//! NCSN++ blocks (score_sde_pytorch `models/layerspp.py`; Song et al. 2021, Appendix H):
//! residual blocks in the BigGAN and DDPM styles, channel self-attention, FIR / naive
//! resampling and the input-pyramid combiner. Residual sums are `(x + h)/√2` with
//! `skip_rescale`.

use super::up_or_down_sampling as uds;
use super::{act, default_init, Conv2d, GroupNorm, Linear, Nin};
use crate::error::Result;
use crate::models::config::Nonlinearity;
use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

const SQRT2: f64 = std::f64::consts::SQRT_2;

fn residual(x: &Tensor, h: &Tensor, skip_rescale: bool) -> Tensor {
    if skip_rescale {
        (x + h) / SQRT2
    } else {
        x + h
    }
}

/// FIR settings shared by the resampling layers.
#[derive(Debug)]
pub struct Fir {
    /// Kernel with gain 4 (upsampling by 2).
    pub up: uds::FirKernel,
    /// Kernel with gain 1 (downsampling by 2).
    pub down: uds::FirKernel,
}

impl Fir {
    pub fn new(k1: &[f64], p: &Path) -> Self {
        let kind = p.kind();
        let kind = if kind == Kind::Double {
            Kind::Double
        } else {
            Kind::Float
        };
        Fir {
            up: uds::FirKernel::new(k1, 4.0, kind, p.device()),
            down: uds::FirKernel::new(k1, 1.0, kind, p.device()),
        }
    }
    /// A copy sharing the kernel storage.
    pub fn shallow(&self) -> Self {
        Fir {
            up: self.up.shallow(),
            down: self.down.shallow(),
        }
    }
}

/// `up_or_down_sampling.Conv2d` (3×3, with bias) in its up or down flavour.
#[derive(Debug)]
pub struct FirConv {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl FirConv {
    pub fn new(p: &Path, cin: i64, cout: i64) -> Self {
        let shape = [cout, cin, 3, 3];
        FirConv {
            weight: p.var("weight", &shape, default_init(1.0, &shape)),
            bias: p.var("bias", &[cout], Init::Const(0.0)),
        }
    }
    fn add_bias(&self, y: Tensor) -> Tensor {
        y + self.bias.reshape([1, -1, 1, 1])
    }
}

/// `Combine`: `Conv_0` (1×1) of the input pyramid, then `cat([h_pyr, y])` or `h_pyr + y`.
#[derive(Debug)]
pub struct Combine {
    pub conv: Conv2d,
    pub cat: bool,
}

impl Combine {
    pub fn new(p: &Path, dim1: i64, dim2: i64, cat: bool) -> Self {
        Combine {
            conv: Conv2d::conv1x1(&(p / "Conv_0"), dim1, dim2),
            cat,
        }
    }
    pub fn forward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let h = self.conv.forward(x);
        if self.cat {
            Tensor::cat(&[&h, y], 1)
        } else {
            h + y
        }
    }
}

/// `AttnBlockpp`: single-head self-attention over pixels with channel-wise q, k, v:
/// `h = NIN₃(softmax(qᵀk/√C) v)`, output `(x + h)/√2` with skip_rescale.
#[derive(Debug)]
pub struct AttnBlockpp {
    gn: GroupNorm,
    nin: [Nin; 4],
    skip_rescale: bool,
}

impl AttnBlockpp {
    pub fn new(p: &Path, c: i64, skip_rescale: bool, init_scale: f64) -> Result<Self> {
        Ok(AttnBlockpp {
            gn: GroupNorm::ncsnpp(&(p / "GroupNorm_0"), c)?,
            nin: [
                Nin::new(&(p / "NIN_0"), c, c, 0.1),
                Nin::new(&(p / "NIN_1"), c, c, 0.1),
                Nin::new(&(p / "NIN_2"), c, c, 0.1),
                Nin::new(&(p / "NIN_3"), c, c, init_scale),
            ],
            skip_rescale,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, hh, ww) = x.size4().expect("[B, C, H, W]");
        let h = self.gn.forward(x).reshape([b, c, hh * ww]);
        let q = self.nin[0].forward_flat(&h);
        let k = self.nin[1].forward_flat(&h);
        let v = self.nin[2].forward_flat(&h);
        // w[b, n, m] = Σ_c q[b,c,n] k[b,c,m] / √C
        let w = q.transpose(1, 2).bmm(&k) * (c as f64).powf(-0.5);
        let w = w.softmax(-1, None::<Kind>);
        // h[b, c, n] = Σ_m w[b,n,m] v[b,c,m]
        let h = v.bmm(&w.transpose(1, 2));
        let h = self.nin[3].forward_flat(&h).reshape([b, c, hh, ww]);
        residual(x, &h, self.skip_rescale)
    }
}

/// `layerspp.Upsample`: FIR (`upsample_2d` or fused `upsample_conv_2d`) or nearest 2× (then
/// `Conv_0` 3×3 with `with_conv`). Upstream's non-FIR branch calls
/// `F.interpolate(x, size, 'nearest')`, whose third positional argument is `scale_factor`, and
/// fails; this port does what it means (nearest-neighbour 2×, as `models/layers.py` does).
#[derive(Debug)]
pub enum Upsample {
    Nearest(Option<Conv2d>),
    Fir(Fir, Option<FirConv>),
}

impl Upsample {
    pub fn new(p: &Path, cin: i64, cout: i64, with_conv: bool, fir: Option<&Fir>) -> Self {
        match fir {
            None => Upsample::Nearest(
                with_conv.then(|| Conv2d::conv3x3(&(p / "Conv_0"), cin, cout, 1.0)),
            ),
            Some(f) => Upsample::Fir(
                f.shallow(),
                with_conv.then(|| FirConv::new(&(p / "Conv2d_0"), cin, cout)),
            ),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Upsample::Nearest(conv) => {
                let h = uds::naive_upsample_2d(x, 2);
                match conv {
                    Some(c) => c.forward(&h),
                    None => h,
                }
            }
            Upsample::Fir(f, None) => uds::upsample_2d(x, &f.up, 2),
            Upsample::Fir(f, Some(c)) => c.add_bias(uds::upsample_conv_2d(x, &c.weight, &f.up, 2)),
        }
    }
}

/// `layerspp.Downsample`: FIR (`downsample_2d` or fused `conv_downsample_2d`), or without FIR
/// `pad(0,1,0,1)` + 3×3 stride-2 `Conv_0` with `with_conv`, else 2×2 average pooling.
#[derive(Debug)]
pub enum Downsample {
    Plain(Option<Conv2d>),
    Fir(Fir, Option<FirConv>),
}

impl Downsample {
    pub fn new(p: &Path, cin: i64, cout: i64, with_conv: bool, fir: Option<&Fir>) -> Self {
        match fir {
            None => Downsample::Plain(
                with_conv.then(|| Conv2d::new(&(p / "Conv_0"), cin, cout, 3, 2, 0, 1.0)),
            ),
            Some(f) => Downsample::Fir(
                f.shallow(),
                with_conv.then(|| FirConv::new(&(p / "Conv2d_0"), cin, cout)),
            ),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Downsample::Plain(Some(c)) => c.forward(&x.constant_pad_nd([0, 1, 0, 1])),
            Downsample::Plain(None) => x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
            Downsample::Fir(f, None) => uds::downsample_2d(x, &f.down, 2),
            Downsample::Fir(f, Some(c)) => {
                c.add_bias(uds::conv_downsample_2d(x, &c.weight, &f.down, 2))
            }
        }
    }
}

/// Resampling inside a BigGAN block.
#[derive(Debug)]
enum BlockResample {
    None,
    Up(Option<Fir>),
    Down(Option<Fir>),
}

/// Shared settings of the residual blocks.
#[derive(Debug, Clone, Copy)]
pub struct BlockOpts {
    pub act: Nonlinearity,
    pub dropout: f64,
    pub skip_rescale: bool,
    pub init_scale: f64,
    pub temb_dim: i64,
}

/// `ResnetBlockBigGANpp`:
/// `h = Conv₁(drop(act(GN₁(Conv₀(rs(act(GN₀ x))) + Dense₀(act temb)))))`,
/// `out = (Conv₂(rs x) + h)/√2`, where `rs` is the optional FIR/naive up or down sampling and
/// `Conv₂` (1×1) exists when channels change or the block resamples.
#[derive(Debug)]
pub struct ResnetBlockBigGanpp {
    gn0: GroupNorm,
    conv0: Conv2d,
    dense0: Linear,
    gn1: GroupNorm,
    conv1: Conv2d,
    conv2: Option<Conv2d>,
    resample: BlockResample,
    o: BlockOpts,
}

impl ResnetBlockBigGanpp {
    /// `up`/`down` select resampling; `fir` gives the FIR kernels (None = naive).
    pub fn new(
        p: &Path,
        cin: i64,
        cout: i64,
        up: bool,
        down: bool,
        fir: Option<&Fir>,
        o: BlockOpts,
    ) -> Result<Self> {
        let resample = if up {
            BlockResample::Up(fir.map(Fir::shallow))
        } else if down {
            BlockResample::Down(fir.map(Fir::shallow))
        } else {
            BlockResample::None
        };
        Ok(ResnetBlockBigGanpp {
            gn0: GroupNorm::ncsnpp(&(p / "GroupNorm_0"), cin)?,
            conv0: Conv2d::conv3x3(&(p / "Conv_0"), cin, cout, 1.0),
            dense0: Linear::new(&(p / "Dense_0"), o.temb_dim, cout),
            gn1: GroupNorm::ncsnpp(&(p / "GroupNorm_1"), cout)?,
            conv1: Conv2d::conv3x3(&(p / "Conv_1"), cout, cout, o.init_scale),
            conv2: (cin != cout || up || down).then(|| Conv2d::conv1x1(&(p / "Conv_2"), cin, cout)),
            resample,
            o,
        })
    }

    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>, train: bool) -> Tensor {
        let h = act(self.o.act, &self.gn0.forward(x));
        let (h, x) = match &self.resample {
            BlockResample::None => (h, x.shallow_clone()),
            BlockResample::Up(Some(f)) => (
                uds::upsample_2d(&h, &f.up, 2),
                uds::upsample_2d(x, &f.up, 2),
            ),
            BlockResample::Up(None) => {
                (uds::naive_upsample_2d(&h, 2), uds::naive_upsample_2d(x, 2))
            }
            BlockResample::Down(Some(f)) => (
                uds::downsample_2d(&h, &f.down, 2),
                uds::downsample_2d(x, &f.down, 2),
            ),
            BlockResample::Down(None) => (
                uds::naive_downsample_2d(&h, 2),
                uds::naive_downsample_2d(x, 2),
            ),
        };
        let mut h = self.conv0.forward(&h);
        if let Some(t) = temb {
            h += self
                .dense0
                .forward(&act(self.o.act, t))
                .unsqueeze(-1)
                .unsqueeze(-1);
        }
        let h = act(self.o.act, &self.gn1.forward(&h));
        let h = if train && self.o.dropout > 0.0 {
            h.dropout(self.o.dropout, true)
        } else {
            h
        };
        let h = self.conv1.forward(&h);
        let x = match &self.conv2 {
            Some(c) => c.forward(&x),
            None => x,
        };
        residual(&x, &h, self.o.skip_rescale)
    }
}

/// `ResnetBlockDDPMpp`: as the BigGAN block without resampling, with a `NIN_0` shortcut when
/// channels change.
#[derive(Debug)]
pub struct ResnetBlockDdpmpp {
    gn0: GroupNorm,
    conv0: Conv2d,
    dense0: Linear,
    gn1: GroupNorm,
    conv1: Conv2d,
    nin0: Option<Nin>,
    o: BlockOpts,
}

impl ResnetBlockDdpmpp {
    pub fn new(p: &Path, cin: i64, cout: i64, o: BlockOpts) -> Result<Self> {
        Ok(ResnetBlockDdpmpp {
            gn0: GroupNorm::ncsnpp(&(p / "GroupNorm_0"), cin)?,
            conv0: Conv2d::conv3x3(&(p / "Conv_0"), cin, cout, 1.0),
            dense0: Linear::new(&(p / "Dense_0"), o.temb_dim, cout),
            gn1: GroupNorm::ncsnpp(&(p / "GroupNorm_1"), cout)?,
            conv1: Conv2d::conv3x3(&(p / "Conv_1"), cout, cout, o.init_scale),
            nin0: (cin != cout).then(|| Nin::new(&(p / "NIN_0"), cin, cout, 0.1)),
            o,
        })
    }

    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>, train: bool) -> Tensor {
        let h = act(self.o.act, &self.gn0.forward(x));
        let mut h = self.conv0.forward(&h);
        if let Some(t) = temb {
            h += self
                .dense0
                .forward(&act(self.o.act, t))
                .unsqueeze(-1)
                .unsqueeze(-1);
        }
        let h = act(self.o.act, &self.gn1.forward(&h));
        let h = if train && self.o.dropout > 0.0 {
            h.dropout(self.o.dropout, true)
        } else {
            h
        };
        let h = self.conv1.forward(&h);
        match &self.nin0 {
            Some(n) => residual(&n.forward(x), &h, self.o.skip_rescale),
            None => residual(x, &h, self.o.skip_rescale),
        }
    }
}

/// Either residual block flavour.
#[derive(Debug)]
pub enum ResBlock {
    BigGan(ResnetBlockBigGanpp),
    Ddpm(ResnetBlockDdpmpp),
}

impl ResBlock {
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>, train: bool) -> Tensor {
        match self {
            ResBlock::BigGan(b) => b.forward(x, temb, train),
            ResBlock::Ddpm(b) => b.forward(x, temb, train),
        }
    }
}
