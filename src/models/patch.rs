//! The whole-image score of a position-aware patch model, at any image size (PaDIS: Hu, Song, Xu,
//! Shen & Fessler, "Learning Image Priors through Patch-based Diffusion Models for Solving Inverse
//! Problems", NeurIPS 2024).
//!
//! A patch network `s_θ(p, t)` sees a `P × P` patch with two extra channels, the normalised
//! position of each of its pixels in the whole image (`(row, column) / (size − 1)` mapped to
//! `[−1, 1]` over the training images; an image of another size keeps the training step per
//! pixel, centred: [`Layout::frame`]), and returns the score of the patch's image channels. For an `H × W` image the
//! whole-image score is assembled as PaDIS does: the image is placed at an offset `(o_y, o_x)`
//! drawn uniformly from `[0, P)²` on a zero canvas of `P·(⌈H/P⌉ + 1) × P·(⌈W/P⌉ + 1)`
//! pixels, the canvas is cut into non-overlapping `P × P` patches, every patch that touches the
//! image goes through the network (in batches of at most `max_patches`, so memory does not grow
//! with the image), and the patch scores are put back and cropped to the image. A new offset is
//! drawn at every call, so the seams between patches move from one sampler step to the next.
//! The offsets come from libtorch's CPU generator (seeded with `tch::manual_seed`), so runs are
//! reproducible and no device value is read back.
//!
//! [`PatchScore`] is a [`ScoreModel`] like any other: every sampler and conditional sampler uses
//! it unchanged, at any image size.
use super::ScoreModel;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A network on patches: `x` `[N, C + 2, P, P]` (image channels, then the row and column
/// position channels), `t` `[N]` → the score of the image channels `[N, C, P, P]`.
pub trait PatchNet: Send + Sync {
    fn patch_score(&self, x: &Tensor, t: &Tensor) -> Tensor;
}

impl<F: Fn(&Tensor, &Tensor) -> Tensor + Send + Sync> PatchNet for F {
    fn patch_score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self(x, t)
    }
}

/// A trained patch network: NCSN++/DDPM++ with `data.extra_input_channels = 2`.
impl<N: super::TimeConditionedNet + ?Sized> PatchNet for super::score_net::NetScore<N> {
    fn patch_score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        ScoreModel::score(self, x, t)
    }
}

/// The whole-image score of a [`PatchNet`] (see the module doc).
pub struct PatchScore<N: PatchNet> {
    net: N,
    /// The patch side `P`.
    pub patch: i64,
    /// The image channels `C`.
    pub channels: i64,
    /// The most patches sent to the network at once.
    pub max_patches: i64,
    /// A fixed offset instead of random ones (tests; `None`: random per call).
    pub fixed_offset: Option<(i64, i64)>,
    /// The shape of the images it was trained on, reported as the default sample shape.
    sample_shape: Option<Vec<i64>>,
    /// The position frame ([`Layout::frame`]): the training images' `(H, W)`.
    pub frame: Option<(i64, i64)>,
}

/// How an `H × W` image sits on the canvas of [`PatchScore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub height: i64,
    pub width: i64,
    pub patch: i64,
    /// Rows and columns of the canvas (multiples of `patch`).
    pub canvas: (i64, i64),
    /// Where the image's pixel (0, 0) sits on the canvas.
    pub offset: (i64, i64),
    /// The image size whose pixels span `[−1, 1]` in the position channels (the training
    /// images' size of a trained model): positions are `(index − (size − 1)/2) · 2/(frame − 1)`,
    /// centred on the image, one pixel the same step as in training whatever the image size.
    /// `None`: the image's own size (`2·index/(size − 1) − 1`).
    pub frame: Option<(i64, i64)>,
}

impl Layout {
    /// The canvas `P·(⌈H/P⌉ + 1) × P·(⌈W/P⌉ + 1)` with the image at `offset` (each in `[0, P)`).
    pub fn new(height: i64, width: i64, patch: i64, offset: (i64, i64)) -> Result<Self> {
        if patch < 1 || height < 1 || width < 1 {
            return Err(Error::Invalid(format!(
                "patch layout: patch {patch} and image {height}×{width} must be at least 1"
            )));
        }
        if !(0..patch).contains(&offset.0) || !(0..patch).contains(&offset.1) {
            return Err(Error::Invalid(format!(
                "patch layout: offset {offset:?} must lie in [0, {patch})²"
            )));
        }
        let side = |n: i64| patch * ((n + patch - 1) / patch + 1);
        Ok(Self {
            height,
            width,
            patch,
            canvas: (side(height), side(width)),
            offset,
            frame: None,
        })
    }

    /// Positions on the pixel scale of `frame` (see [`Layout::frame`]).
    pub fn with_frame(mut self, frame: Option<(i64, i64)>) -> Self {
        self.frame = frame;
        self
    }

    /// The position channels `[2, canvas rows, canvas columns]`: each canvas pixel's row and
    /// column in the image's frame, `2·index/(size − 1) − 1` (`0` for a side of one pixel), so
    /// `[−1, 1]` over the image and beyond it on the padding.
    pub fn positions(&self, kind: Kind, device: Device) -> Tensor {
        let axis = |n: i64, size: i64, frame: i64, off: i64| {
            let idx = Tensor::arange(n, (kind, device)) - off as f64 - (size - 1) as f64 / 2.0;
            if frame > 1 {
                idx * (2.0 / (frame - 1) as f64)
            } else {
                idx * 0.0
            }
        };
        let (fh, fw) = self.frame.unwrap_or((self.height, self.width));
        let rows = axis(self.canvas.0, self.height, fh, self.offset.0);
        let cols = axis(self.canvas.1, self.width, fw, self.offset.1);
        let r = rows
            .unsqueeze(1)
            .expand([self.canvas.0, self.canvas.1], false);
        let c = cols
            .unsqueeze(0)
            .expand([self.canvas.0, self.canvas.1], false);
        Tensor::stack(&[r, c], 0)
    }

    /// The `(row, column)` indices of the patches that touch the image.
    pub fn patches(&self) -> Vec<(i64, i64)> {
        let p = self.patch;
        let (r0, r1) = (self.offset.0 / p, (self.offset.0 + self.height - 1) / p);
        let (c0, c1) = (self.offset.1 / p, (self.offset.1 + self.width - 1) / p);
        (r0..=r1)
            .flat_map(|i| (c0..=c1).map(move |j| (i, j)))
            .collect()
    }
}

impl<N: PatchNet> PatchScore<N> {
    /// `net` on `patch × patch` patches of `channels`-channel images, at most `max_patches`
    /// patches per network call.
    pub fn new(net: N, patch: i64, channels: i64, max_patches: i64) -> Result<Self> {
        if patch < 1 || channels < 1 || max_patches < 1 {
            return Err(Error::Config(format!(
                "patch score: `patch` {patch}, channels {channels} and `max_patches` \
                 {max_patches} must be at least 1"
            )));
        }
        Ok(Self {
            net,
            patch,
            channels,
            max_patches,
            fixed_offset: None,
            sample_shape: None,
            frame: None,
        })
    }

    /// Reports `shape` as [`ScoreModel::sample_shape`] (what `scoreinv sample` draws by
    /// default); any other image size is scored as well.
    pub fn with_sample_shape(mut self, shape: Vec<i64>) -> Self {
        self.sample_shape = Some(shape);
        self
    }

    /// Position channels on the pixel scale of `(H, W)` images (a trained model: its training
    /// images), so that an image of another size keeps the training step per pixel.
    pub fn with_position_frame(mut self, frame: (i64, i64)) -> Self {
        self.frame = Some(frame);
        self
    }

    /// The offset of this call: fixed, or uniform on `[0, P)²` from the CPU generator.
    fn offset(&self) -> (i64, i64) {
        if let Some(o) = self.fixed_offset {
            return o;
        }
        let o = Tensor::randint(self.patch, [2], (Kind::Int64, Device::Cpu));
        (o.int64_value(&[0]), o.int64_value(&[1]))
    }

    /// The score of `x` `[B, C, H, W]` at times `t` `[B]` with the image at `offset`.
    pub fn score_at(&self, x: &Tensor, t: &Tensor, offset: (i64, i64)) -> Result<Tensor> {
        let size = x.size();
        if size.len() != 4 || size[1] != self.channels {
            return Err(Error::Shape {
                what: "patch score input".into(),
                expected: format!("[B, {}, H, W]", self.channels),
                actual: format!("{size:?}"),
            });
        }
        let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
        let lay = Layout::new(h, w, self.patch, offset)?.with_frame(self.frame);
        let p = self.patch;
        let (ch, cw) = lay.canvas;
        let canvas = Tensor::zeros([b, c, ch, cw], (x.kind(), x.device()));
        canvas
            .narrow(2, offset.0, h)
            .narrow(3, offset.1, w)
            .copy_(x);
        let pos = lay
            .positions(x.kind(), x.device())
            .unsqueeze(0)
            .expand([b, 2, ch, cw], false);
        let full = Tensor::cat(&[canvas, pos], 1);
        // The canvas is a grid of `nr × nc` non-overlapping patches: one reshape and permute
        // lays them out as `[B, nr·nc, C + 2, P, P]` (row-major cells), and the cells that touch
        // the image are picked with one index, in the order (batch, patch).
        let (nr, nc) = (ch / p, cw / p);
        let cells = lay.patches();
        let n = cells.len() as i64;
        let index = Tensor::from_slice(&cells.iter().map(|&(i, j)| i * nc + j).collect::<Vec<_>>())
            .to_device(x.device());
        let patches = full
            .reshape([b, c + 2, nr, p, nc, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, nr * nc, c + 2, p, p])
            .index_select(1, &index)
            .reshape([b * n, c + 2, p, p]);
        let times = t.reshape([b, 1]).expand([b, n], false).reshape([b * n]);
        let mut out = Vec::new();
        let mut start = 0;
        while start < b * n {
            let len = self.max_patches.min(b * n - start);
            out.push(
                self.net
                    .patch_score(&patches.narrow(0, start, len), &times.narrow(0, start, len)),
            );
            start += len;
        }
        let scores = Tensor::cat(&out, 0);
        if scores.size() != [b * n, c, p, p] {
            return Err(Error::Shape {
                what: "patch network output".into(),
                expected: format!("[{}, {c}, {p}, {p}]", b * n),
                actual: format!("{:?}", scores.size()),
            });
        }
        // Back onto the grid (zero where no patch ran) and from the grid to the canvas.
        let grid = Tensor::zeros([b, nr * nc, c, p, p], (scores.kind(), scores.device()))
            .index_copy(1, &index, &scores.reshape([b, n, c, p, p]));
        let result = grid
            .reshape([b, nr, nc, c, p, p])
            .permute([0, 3, 1, 4, 2, 5])
            .reshape([b, c, ch, cw]);
        Ok(result.narrow(2, offset.0, h).narrow(3, offset.1, w))
    }
}

impl<N: PatchNet> ScoreModel for PatchScore<N> {
    /// The stitched score at a new offset (see the module doc).
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let offset = self.offset();
        self.score_at(x, t, offset)
            .unwrap_or_else(|e| panic!("patch score of a {:?} batch: {e}", x.size()))
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        self.sample_shape.clone()
    }
    fn any_size(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_has_a_spare_patch_and_only_touching_patches_run() {
        let l = Layout::new(10, 7, 4, (3, 0)).unwrap();
        assert_eq!(l.canvas, (16, 12));
        // Rows 3..13 touch patch rows 0..=3; columns 0..7 touch patch columns 0..=1.
        assert_eq!(l.patches().len(), 4 * 2);
        assert!(Layout::new(10, 7, 4, (4, 0)).is_err());
        let pos = l.positions(Kind::Double, Device::Cpu);
        // The image's first row is at canvas row 3 with position −1, its last (row 12) at +1.
        assert!((pos.double_value(&[0, 3, 0]) + 1.0).abs() < 1e-12);
        assert!((pos.double_value(&[0, 12, 0]) - 1.0).abs() < 1e-12);
        assert!((pos.double_value(&[1, 0, 6]) - 1.0).abs() < 1e-12);
        // On the pixel scale of 5-row, 4-column training images: step 2/4 per row, 2/3 per
        // column, centred on this image (row 3 + 4.5 = canvas 7.5 is the centre).
        let pos = l
            .with_frame(Some((5, 4)))
            .positions(Kind::Double, Device::Cpu);
        assert!((pos.double_value(&[0, 3, 0]) + 2.25).abs() < 1e-12);
        assert!((pos.double_value(&[0, 12, 0]) - 2.25).abs() < 1e-12);
        assert!((pos.double_value(&[1, 0, 6]) - 2.0).abs() < 1e-12);
    }
}
