//! Patch training of a position-aware score network (PaDIS: Hu, Song, Xu, Shen & Fessler,
//! "Learning Image Priors through Patch-based Diffusion Models for Solving Inverse Problems",
//! NeurIPS 2024).
//!
//! Each training image `x₀` `[C, H, W]` (at its full resolution) gives one `P × P` patch whose
//! top-left pixel sits at image row `r₀ ∈ [−(P−1), H−1]` and column `c₀ ∈ [−(P−1), W−1]`,
//! drawn uniformly: exactly the patches that touch the image in
//! [`PatchScore`](crate::models::patch::PatchScore)'s canvas at a uniform offset. Pixels of the
//! patch outside the image are zero and stay zero under the noise (the canvas is zero there at
//! sampling time too), and the two position channels give every pixel's place in the image,
//! `2·index/(size − 1) − 1` ([`Layout::positions`](crate::models::patch::Layout::positions)).
//!
//! The loss is continuous DSM restricted to the pixels inside the image (mask `m`):
//! `x_t = m ⊙ (m(t) x₀ + σ(t) z)`,
//! `ℓ = ½ Σ m ⊙ (σ(t) s_θ([x_t, pos], t) + z)²` (`λ(t) = σ(t)²`), or with likelihood weighting
//! `½ Σ m ⊙ (s_θ + z/σ)² · g(t)²`; `reduce_mean` divides by the pixels inside instead of
//! halving. Its minimiser is the score of the marginal of the inside pixels of a patch at that
//! position, which is what the stitched whole-image score needs.
use super::rng::Stream;
use crate::sde::{bcast, Sde};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Random patches of a batch, with their position channels and inside-the-image mask.
pub struct Patches {
    /// `[B, C, P, P]`, zero outside the image.
    pub x: Tensor,
    /// `[B, 2, P, P]`: row and column positions in the image frame.
    pub positions: Tensor,
    /// `[B, 1, P, P]`: 1 inside the image, 0 outside.
    pub mask: Tensor,
}

/// The top-left `(row, column)` of `b` patches of side `p` on `h × w` images, uniform on
/// `[−(p−1), h−1] × [−(p−1), w−1]` (every patch touches the image).
pub fn draw_corners(rng: &mut Stream, b: usize, h: i64, w: i64, p: i64) -> Vec<(i64, i64)> {
    let rows = rng.below(b, (h + p - 1) as u64);
    let cols = rng.below(b, (w + p - 1) as u64);
    rows.iter()
        .zip(&cols)
        .map(|(&r, &c)| (r - (p - 1), c - (p - 1)))
        .collect()
}

/// The position channels `[2, p, p]` of the patch with top-left `(r0, c0)` on an `h × w` image.
pub fn patch_positions(h: i64, w: i64, p: i64, corner: (i64, i64), like: &Tensor) -> Tensor {
    let opts = (like.kind(), like.device());
    let axis = |start: i64, size: i64| {
        let idx = Tensor::arange(p, opts) + start as f64;
        if size > 1 {
            idx * (2.0 / (size - 1) as f64) - 1.0
        } else {
            idx * 0.0
        }
    };
    let r = axis(corner.0, h).unsqueeze(1).expand([p, p], false);
    let c = axis(corner.1, w).unsqueeze(0).expand([p, p], false);
    Tensor::stack(&[r, c], 0)
}

/// The patches of `x0` `[B, C, H, W]` with top-left corners `corners` (one per image).
pub fn extract(x0: &Tensor, p: i64, corners: &[(i64, i64)]) -> Result<Patches> {
    let size = x0.size();
    let [b, _, h, w] = size[..] else {
        return Err(Error::Shape {
            what: "patch training batch".into(),
            expected: "[B, C, H, W]".into(),
            actual: format!("{size:?}"),
        });
    };
    if corners.len() as i64 != b || p < 1 {
        return Err(Error::Invalid(format!(
            "patch extraction: {} corners of side {p} for a batch of {b}",
            corners.len()
        )));
    }
    let pad = p - 1;
    let padded = x0.constant_pad_nd([pad, pad, pad, pad]);
    let ones =
        Tensor::ones([1, 1, h, w], (x0.kind(), x0.device())).constant_pad_nd([pad, pad, pad, pad]);
    let (mut xs, mut ps, mut ms) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &(r0, c0)) in corners.iter().enumerate() {
        if !(-(p - 1)..h).contains(&r0) || !(-(p - 1)..w).contains(&c0) {
            return Err(Error::Invalid(format!(
                "patch corner ({r0}, {c0}) of side {p} does not touch a {h}×{w} image"
            )));
        }
        let (rr, cc) = (r0 + pad, c0 + pad);
        xs.push(padded.get(i as i64).narrow(1, rr, p).narrow(2, cc, p));
        ms.push(ones.get(0).narrow(1, rr, p).narrow(2, cc, p));
        ps.push(patch_positions(h, w, p, (r0, c0), x0));
    }
    Ok(Patches {
        x: Tensor::stack(&xs, 0),
        positions: Tensor::stack(&ps, 0),
        mask: Tensor::stack(&ms, 0),
    })
}

/// Per-patch masked DSM loss `[B]` (the module formula) of `score([x_t, pos], t)` at times `t`
/// `[B]` with noise `z` `[B, C, P, P]`.
#[allow(clippy::too_many_arguments)]
pub fn masked_dsm_per_sample(
    score: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    sde: &dyn Sde,
    patches: &Patches,
    t: &Tensor,
    z: &Tensor,
    reduce_mean: bool,
    likelihood_weighting: bool,
) -> Tensor {
    let x0 = &patches.x;
    let m = &patches.mask;
    let (mean, std) = sde.marginal_prob(x0, t);
    let stdb = bcast(&std, x0);
    let xt = (mean + &stdb * z) * m;
    let s = score(&Tensor::cat(&[&xt, &patches.positions], 1), t);
    let r = if likelihood_weighting {
        (s + z / &stdb).square() * m
    } else {
        (s * &stdb + z).square() * m
    };
    let per = r.flatten(1, -1).sum_dim_intlist(1i64, false, r.kind());
    let per = if reduce_mean {
        let c = x0.size()[1] as f64;
        let inside = m.flatten(1, -1).sum_dim_intlist(1i64, false, m.kind()) * c;
        per / inside
    } else {
        per * 0.5
    };
    if likelihood_weighting {
        per * sde.diffusion(t).square()
    } else {
        per
    }
}

/// The batch-mean patch DSM loss of `score` on images `x0` `[B, C, H, W]`, one random patch
/// of side `p` per image, every draw (corners, times `t ~ U(loss.eps, 1)`, noise) from `rng`,
/// with `loss`'s reduction and weighting: what a training step computes.
pub fn patch_dsm_loss(
    score: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    sde: &dyn Sde,
    x0: &Tensor,
    p: i64,
    loss: &super::losses::LossConfig,
    rng: &mut Stream,
) -> Result<Tensor> {
    let size = x0.size();
    let b = size[0] as usize;
    let corners = draw_corners(rng, b, size[2], size[3], p);
    let patches = extract(x0, p, &corners)?;
    let t = super::losses::sample_times(rng, b, loss.eps, x0);
    let z = rng.normal(&patches.x.size(), x0.kind(), x0.device());
    let per = masked_dsm_per_sample(
        score,
        sde,
        &patches,
        &t,
        &z,
        loss.reduce_mean,
        loss.likelihood_weighting,
    );
    Ok(per.mean(Kind::Float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn patches_pad_with_zeros_and_positions_follow_the_image_frame() {
        let x = Tensor::arange(12, (Kind::Double, Device::Cpu)).reshape([1, 1, 3, 4]) + 1.0;
        let p = extract(&x, 2, &[(-1, 3)]).unwrap();
        // Rows −1..1, columns 3..5: only image pixel (0, 3) = 4 is inside.
        let v: Vec<f64> = p.x.flatten(0, -1).try_into().unwrap();
        assert_eq!(v, vec![0.0, 0.0, 4.0, 0.0]);
        let m: Vec<f64> = p.mask.flatten(0, -1).try_into().unwrap();
        assert_eq!(m, vec![0.0, 0.0, 1.0, 0.0]);
        // Row −1 of a 3-row image: 2·(−1)/2 − 1 = −2; column 3 of 4: +1.
        assert!((p.positions.double_value(&[0, 0, 0, 0]) + 2.0).abs() < 1e-12);
        assert!((p.positions.double_value(&[0, 1, 1, 0]) - 1.0).abs() < 1e-12);
        assert!(extract(&x, 2, &[(-2, 0)]).is_err());
        assert!(extract(&x, 2, &[(0, 4)]).is_err());
    }

    #[test]
    fn corners_cover_every_touching_patch() {
        let mut rng = Stream::new(1, 0, super::super::rng::Purpose::Loss);
        let c = draw_corners(&mut rng, 4000, 5, 3, 3);
        let (rmin, rmax) = (c.iter().map(|x| x.0).min(), c.iter().map(|x| x.0).max());
        let (cmin, cmax) = (c.iter().map(|x| x.1).min(), c.iter().map(|x| x.1).max());
        assert_eq!(
            (rmin, rmax, cmin, cmax),
            (Some(-2), Some(4), Some(-2), Some(2))
        );
    }
}
