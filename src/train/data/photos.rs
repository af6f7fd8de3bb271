//! Random multi-scale square crops of colour photographs: the training set of a colour prior
//! when only a few dozen scenes are available (the `color-64` model).
//!
//! Each photo is decoded once and shrunk (antialiased, triangle filter) so that its short side is
//! at most `4 · size`. Crop `i` then draws, from its own ChaCha8 stream (`seed`, stream `i`, so
//! the set does not depend on thread timing): a photo uniformly, a side `s = u · short_side`
//! with `u ~ U(`[`MIN_CROP_FRACTION`]`, 1)` (multi-scale: from a quarter of the scene to all of
//! its short side), a uniform position, and resizes that square to `size × size` (triangle
//! filter, antialiased). Random horizontal flips are applied later by the trainer, as for every
//! image source.
//!
//! Paths may be image files, folders (their images, not recursive) or `.txt` lists of such paths
//! (one per line, `#` comments, relative to the list's folder). Photos that should be held out
//! for evaluation are simply not listed: see `data/color-photos.txt` and
//! `data/color-photos-heldout.txt`.

use super::folder::{is_image, list_images, rgb_chw};
use crate::{Error, Result};
use image::imageops::FilterType;
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Smallest crop side, as a fraction of the photo's short side.
pub const MIN_CROP_FRACTION: f64 = 0.25;

/// Seed of the crop stream used by `scoreinv train --data photos:…`.
pub const TRAIN_CROP_SEED: u64 = 0x7068_6f74_6f73_0001;

/// Expands files, folders and `.txt` lists into a sorted, de-duplicated list of image files.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(list_images(p)?);
        } else if p.extension().and_then(|e| e.to_str()) == Some("txt") {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let base = p.parent().unwrap_or(Path::new("."));
            let listed: Vec<PathBuf> = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(|l| base.join(l))
                .collect();
            if listed.is_empty() {
                return Err(Error::Invalid(format!(
                    "photo list {} names no files",
                    p.display()
                )));
            }
            out.extend(expand_paths(&listed)?);
        } else if p.is_file() && is_image(p) {
            out.push(p.clone());
        } else if p.exists() {
            return Err(Error::Invalid(format!(
                "{}: not an image (.png, .tif, .tiff, .jpg, .jpeg), folder or .txt list",
                p.display()
            )));
        } else {
            return Err(Error::Invalid(format!("{}: no such file", p.display())));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(Error::Invalid(format!(
            "no images found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

/// Decodes a photo as RGB and shrinks it so that its short side is at most `max_short`.
fn load_photo(path: &Path, max_short: u32) -> Result<RgbImage> {
    let img = image::open(path)
        .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let short = w.min(h);
    if short < 8 {
        return Err(Error::Invalid(format!(
            "{}: {w}x{h} is too small to crop",
            path.display()
        )));
    }
    if short <= max_short {
        return Ok(img);
    }
    let f = max_short as f64 / short as f64;
    let (nw, nh) = (
        ((w as f64 * f).round() as u32).max(1),
        ((h as f64 * f).round() as u32).max(1),
    );
    Ok(image::imageops::resize(&img, nw, nh, FilterType::Triangle))
}

/// `n` random crops of the photos at `size × size`: `[n, 3, size, size]` f32 in `[0, 1]`.
pub fn photo_crops(files: &[PathBuf], n: usize, size: u32, seed: u64) -> Result<Tensor> {
    if files.is_empty() || n == 0 || size < 2 {
        return Err(Error::Invalid(format!(
            "photo crops need photos, a positive count and a size >= 2 (got {} photos, {n} crops, size {size})",
            files.len()
        )));
    }
    let photos: Vec<RgbImage> = files
        .par_iter()
        .map(|f| load_photo(f, 4 * size))
        .collect::<Result<_>>()?;
    let crops: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            let photo = &photos[rng.gen_range(0..photos.len())];
            let (w, h) = photo.dimensions();
            let short = w.min(h) as f64;
            let side = (rng.gen_range(MIN_CROP_FRACTION..=1.0) * short)
                .round()
                .clamp(2.0, short) as u32;
            let x0 = rng.gen_range(0..=w - side);
            let y0 = rng.gen_range(0..=h - side);
            let crop = image::imageops::crop_imm(photo, x0, y0, side, side).to_image();
            let small = image::imageops::resize(&crop, size, size, FilterType::Triangle);
            rgb_chw(&image::DynamicImage::ImageRgb8(small))
        })
        .collect();
    let flat: Vec<f32> = crops.into_iter().flatten().collect();
    Ok(Tensor::from_slice(&flat).reshape([n as i64, 3, size as i64, size as i64]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_photo(dir: &Path, name: &str, w: u32, h: u32, rgb: [u8; 3]) -> PathBuf {
        let p = dir.join(name);
        let img = RgbImage::from_fn(w, h, |x, _| {
            // A horizontal ramp in the red channel, constant green/blue.
            image::Rgb([((x * 255) / (w - 1)) as u8, rgb[1], rgb[2]])
        });
        img.save(&p).unwrap();
        p
    }

    #[test]
    fn crops_are_deterministic_in_range_and_from_the_listed_photos() {
        let dir = tempfile::tempdir().unwrap();
        write_photo(dir.path(), "a.png", 300, 200, [0, 10, 200]);
        write_photo(dir.path(), "b.png", 120, 160, [0, 250, 30]);
        std::fs::write(
            dir.path().join("list.txt"),
            "# two photos\na.png\nb.png # second\n",
        )
        .unwrap();
        let files = expand_paths(&[dir.path().join("list.txt")]).unwrap();
        assert_eq!(files.len(), 2);
        let x = photo_crops(&files, 40, 16, 7).unwrap();
        assert_eq!(x.size(), vec![40, 3, 16, 16]);
        let y = photo_crops(&files, 40, 16, 7).unwrap();
        assert!(x.equal(&y), "same seed, same crops");
        let z = photo_crops(&files, 40, 16, 8).unwrap();
        assert!(!x.equal(&z), "another seed, other crops");
        let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
        // Every crop's green level is one of the two photos' (constant per photo).
        let g = x
            .select(1, 1)
            .mean_dim(&[1i64, 2][..], false, tch::Kind::Float);
        let g: Vec<f32> = Vec::try_from(g).unwrap();
        let mut seen = [false; 2];
        for v in g {
            let d_a = (v - 10.0 / 255.0).abs();
            let d_b = (v - 250.0 / 255.0).abs();
            assert!(d_a < 1e-3 || d_b < 1e-3, "green {v} from neither photo");
            seen[usize::from(d_b < 1e-3)] = true;
        }
        assert!(seen[0] && seen[1], "both photos are drawn");
        // Multi-scale: the red ramp's spread within a crop varies with the crop side.
        let r = x.select(1, 0);
        let spread = (r.amax(&[1i64, 2][..], false) - r.amin(&[1i64, 2][..], false)).flatten(0, -1);
        let spread: Vec<f32> = Vec::try_from(spread).unwrap();
        let (smin, smax) = spread
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(smax - smin > 0.2, "crop scales vary: spread {smin}..{smax}");
    }

    #[test]
    fn bad_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.jpg");
        let e = expand_paths(&[missing]).unwrap_err().to_string();
        assert!(e.contains("nope.jpg") && e.contains("no such file"), "{e}");
        let txt = dir.path().join("empty.txt");
        std::fs::write(&txt, "# nothing\n").unwrap();
        let e = expand_paths(&[txt]).unwrap_err().to_string();
        assert!(e.contains("names no files"), "{e}");
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let files = expand_paths(&[bad]).unwrap();
        let e = photo_crops(&files, 2, 8, 0).unwrap_err().to_string();
        assert!(e.contains("bad.png") && e.contains("decode"), "{e}");
    }
}
