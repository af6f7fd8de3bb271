//! A folder of images (PNG, TIFF, JPEG) as a training set: all images must have the same size;
//! the set is grayscale if every image is, RGB otherwise. Values are scaled to `[0, 1]` by the
//! `image` crate (8- and 16-bit alike).

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Whether the path names an image the `image` crate reads here (by extension: PNG, TIFF, JPEG).
pub fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "png" | "tif" | "tiff" | "jpg" | "jpeg"
            )
        })
        .unwrap_or(false)
}

/// Image files of `dir` (by extension), sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
}

/// An image as RGB planes (CHW order) of values in `[0, 1]`.
pub fn rgb_chw(img: &image::DynamicImage) -> Vec<f32> {
    let rgb = img.to_rgb32f();
    let raw = rgb.as_raw();
    let mut out = Vec::with_capacity(raw.len());
    for ch in 0..3 {
        out.extend(raw.iter().skip(ch).step_by(3));
    }
    out
}

/// Loads every image of `dir`: returns `(data [N·C·H·W] in [0, 1], [C, H, W])`.
pub fn load_folder(dir: &Path) -> Result<(Vec<f32>, [i64; 3])> {
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "data folder {} contains no images (.png, .tif, .tiff, .jpg, .jpeg)",
            dir.display()
        )));
    }
    let mut imgs = Vec::with_capacity(files.len());
    for f in &files {
        let img =
            image::open(f).map_err(|e| Error::format(f, format!("cannot decode image: {e}")))?;
        imgs.push(img);
    }
    let (w0, h0) = (imgs[0].width(), imgs[0].height());
    for (f, img) in files.iter().zip(&imgs) {
        if (img.width(), img.height()) != (w0, h0) {
            return Err(Error::Invalid(format!(
                "data folder {} mixes image sizes: {} is {}x{}, {} is {}x{} (resize them to one size first)",
                dir.display(),
                files[0].display(),
                w0,
                h0,
                f.display(),
                img.width(),
                img.height()
            )));
        }
    }
    let color = imgs.iter().any(|i| i.color().has_color());
    let c = if color { 3 } else { 1 };
    let mut data = Vec::with_capacity(imgs.len() * (c * w0 * h0) as usize);
    for img in &imgs {
        if color {
            data.extend(rgb_chw(img));
        } else {
            data.extend_from_slice(img.to_luma32f().as_raw());
        }
    }
    Ok((data, [c as i64, h0 as i64, w0 as i64]))
}
