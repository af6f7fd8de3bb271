//! A folder of images as a training set ([`load_folder`], read like every other command's
//! folders), and the photo-file helpers of [`super::photos`].

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

/// Loads every picture of `dir` with the image reader every command uses
/// ([`crate::io::folder_images`], [`crate::io::read_image`]: PNG, JPEG, 8/16-bit and float TIFF,
/// NPY, NIfTI pictures; a folder that also holds DICOM files is refused as ambiguous), values
/// mapped to [0, 1] as for evaluation cases (integer pictures by their bit depth; float data in
/// [0, 1] kept, other ranges min–max normalised, with a note). All pictures must have one size;
/// the set is gray if every picture is, RGB otherwise (gray pictures replicated). Returns
/// `(data [N·C·H·W], [C, H, W])`.
pub fn load_folder(dir: &Path) -> Result<(Vec<f32>, [i64; 3])> {
    let Some(files) = crate::io::folder_images(dir)? else {
        return Err(Error::Invalid(format!(
            "data folder {} contains no images (.png, .tif, .tiff, .jpg, .jpeg, .npy, .nii, \
             .nii.gz)",
            dir.display()
        )));
    };
    let opts = crate::data::cases::CaseOptions::default();
    let mut imgs = Vec::with_capacity(files.len());
    for f in &files {
        let img = crate::io::read_image(f)?;
        if img.axes == crate::io::Axes::Dhw {
            return Err(Error::format(
                f,
                format!(
                    "a volume of {} slices, not a picture: train on volumes with nifti:FILE or \
                     a .npy stack",
                    img.depth()
                ),
            ));
        }
        if !matches!(img.depth(), 1 | 3) {
            return Err(Error::format(
                f,
                format!("{} channels: expected gray (1) or RGB (3)", img.depth()),
            ));
        }
        let name = f.display().to_string();
        // Checked before the values are mapped: min–max scaling would turn ±Inf into NaN.
        crate::io::ensure_finite(&img.data, &name)?;
        let data = crate::data::cases::to_unit_range(&img, &opts, &name);
        imgs.push(data);
    }
    let (h0, w0) = (imgs[0].shape()[1], imgs[0].shape()[2]);
    for (f, img) in files.iter().zip(&imgs) {
        let (h, w) = (img.shape()[1], img.shape()[2]);
        if (h, w) != (h0, w0) {
            return Err(Error::Invalid(format!(
                "data folder {} mixes image sizes: {} is {}x{}, {} is {}x{} (resize them to one size first)",
                dir.display(),
                files[0].display(),
                w0,
                h0,
                f.display(),
                w,
                h
            )));
        }
    }
    let color = imgs.iter().any(|i| i.shape()[0] == 3);
    let c = if color { 3 } else { 1 };
    let mut data = Vec::with_capacity(imgs.len() * c * w0 * h0);
    for img in &imgs {
        for k in 0..c {
            let ch = if img.shape()[0] == 3 { k } else { 0 };
            data.extend(img.index_axis(ndarray::Axis(0), ch).iter().copied());
        }
    }
    Ok((data, [c as i64, h0 as i64, w0 as i64]))
}
