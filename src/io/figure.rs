//! Labelled comparison figures: one row of panels (truth, each method, |error| × k) upscaled by
//! an integer factor to at least [`FigureConfig::min_panel_px`], each titled above and, where a
//! truth exists, captioned with its PSNR/SSIM below; the display window stated in a footer; an
//! optional region of interest boxed on every panel and repeated enlarged in a second row; and
//! for colour-mapped panels (|error|, posterior std) a colour bar with tick values.
//!
//! Text is drawn with `imageproc` in DejaVu Sans (bundled in `data/fonts/`, Bitstream Vera
//! licence); the perceptual colormap is viridis (van der Walt & Smith, matplotlib 2015) from
//! `colorous`.
use super::atomic::write_atomic;
use crate::{Error, Result};
use ab_glyph::{FontRef, PxScale};
use image::imageops::{self, FilterType};
use image::{ImageEncoder, Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;
use ndarray::{Array3, Axis};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// DejaVu Sans, the figures' font.
pub(crate) static FONT_BYTES: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

/// Background of the figure.
pub const BACKGROUND: Rgb<u8> = Rgb([0, 0, 0]);
/// Colour of all text.
pub const TEXT: Rgb<u8> = Rgb([255, 255, 255]);
/// Colour of the region-of-interest box.
pub const ROI_BOX: Rgb<u8> = Rgb([255, 196, 0]);

/// Largest accepted [`FigureConfig::min_panel_px`].
const MAX_PANEL_PX: u32 = 4096;
/// Height in pixels of the title text.
const TITLE_PX: f32 = 20.0;
/// Height in pixels of captions, footer and tick labels.
const SMALL_PX: f32 = 16.0;
/// Padding between panels and around text.
const GAP: u32 = 8;
/// Width of the colour bar.
const BAR_W: u32 = 20;

/// A display window: the values shown black and white, in physical units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayWindow {
    pub lo: f64,
    pub hi: f64,
    /// `HU` for CT.
    pub units: String,
}

/// A region of interest in pixel coordinates of the (not upscaled) image: columns
/// `x..x + width`, rows `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roi {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// How figures are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FigureConfig {
    /// Each panel is upscaled by the smallest integer factor that makes its longer side at
    /// least this many pixels (default 256).
    pub min_panel_px: u32,
    /// Gain `k` of the |error| × k panels (and of the posterior std beside them; default 4).
    pub error_gain: f32,
    /// A region boxed on every panel and shown enlarged in a second row.
    pub roi: Option<Roi>,
    /// The window that maps the images' [0, 1] to physical values (CT: the HU window); `None`:
    /// the images are shown as [0, 1].
    pub window: Option<DisplayWindow>,
    /// For cases in HU: the HU range shown, narrower than the data window (a brain window
    /// `[-160, 240]` inside `[-1000, 1500]`); `None`: the data window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_window: Option<[f64; 2]>,
}

impl Default for FigureConfig {
    fn default() -> Self {
        FigureConfig {
            min_panel_px: 256,
            error_gain: 4.0,
            roi: None,
            window: None,
            display_window: None,
        }
    }
}

/// How a panel's values in [0, 1] become colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Colormap {
    #[default]
    Gray,
    /// Perceptually uniform, dark blue (0) to yellow (1).
    Viridis,
}

impl Colormap {
    /// The colour of `v` (clamped to [0, 1]).
    pub fn color(self, v: f32) -> Rgb<u8> {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            Colormap::Gray => {
                let g = (v * 255.0).round() as u8;
                Rgb([g, g, g])
            }
            Colormap::Viridis => {
                let c = colorous::VIRIDIS.eval_continuous(v as f64);
                Rgb([c.r, c.g, c.b])
            }
        }
    }
}

/// One panel: display values in [0, 1] (`[C, H, W]`, C = 1 through the colormap or C = 3 as
/// RGB), a title and an optional caption.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub image: Array3<f32>,
    /// Printed under the panel (`PSNR 31.20 dB  SSIM 0.874`).
    pub caption: Option<String>,
    pub colormap: Colormap,
}

impl Panel {
    /// A grayscale (C = 1) or colour (C = 3) panel without caption.
    pub fn new(title: impl Into<String>, image: Array3<f32>) -> Self {
        Panel {
            title: title.into(),
            image,
            caption: None,
            colormap: Colormap::Gray,
        }
    }
    /// The same panel with a caption.
    pub fn with_caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }
}

/// The scale of the colour-mapped panels: display 0 → `lo`, 1 → `hi` (tick values), titled.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorBar {
    pub lo: f64,
    pub hi: f64,
    pub title: String,
}

/// Where the parts of one panel lie in the figure (for checks of the drawing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanelLayout {
    pub title: Rect,
    pub image: Rect,
    /// The caption strip (present when any panel has a caption).
    pub caption: Option<Rect>,
    /// The enlarged region of interest.
    pub roi: Option<Rect>,
}

/// A drawn figure and where its parts are.
#[derive(Debug, Clone)]
pub struct Figure {
    pub image: RgbImage,
    pub panels: Vec<PanelLayout>,
    /// The colour bar itself (without its tick labels).
    pub color_bar: Option<Rect>,
    /// The footer line (window, error gain, region of interest).
    pub footer: Rect,
    /// The integer upscaling factor of the panels.
    pub scale: u32,
}

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT_BYTES).expect("the bundled DejaVu Sans is a valid TrueType font")
}

fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
    Rect::at(x as i32, y as i32).of_size(w.max(1), h.max(1))
}

/// A number for a label: `-160`, `0.25`, `12.5` (at most 3 decimals, no trailing zeros).
pub fn format_value(v: f64) -> String {
    // Three significant digits for small magnitudes (raw k-space is ~1e-4), three decimals else.
    if v != 0.0 && v.abs() < 0.01 {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

impl FigureConfig {
    /// Refuses settings that cannot be drawn for `[height, width]` images, naming the field.
    pub fn check(&self, height: usize, width: usize) -> Result<()> {
        if let Some([lo, hi]) = self.display_window {
            if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                return Err(Error::Config(format!(
                    "`display_window` {lo},{hi}: lo must be below hi (both finite)"
                )));
            }
        }
        if self.min_panel_px == 0 || self.min_panel_px > MAX_PANEL_PX {
            return Err(Error::Config(format!(
                "`min_panel_px` must be in 1..={MAX_PANEL_PX}, got {}",
                self.min_panel_px
            )));
        }
        if !(self.error_gain.is_finite() && self.error_gain > 0.0) {
            return Err(Error::Config(format!(
                "`error_gain` must be a positive number, got {}",
                self.error_gain
            )));
        }
        if let Some(w) = &self.window {
            if !(w.lo.is_finite() && w.hi.is_finite() && w.hi > w.lo) {
                return Err(Error::Config(format!(
                    "`window` needs finite lo < hi, got [{}, {}]",
                    w.lo, w.hi
                )));
            }
        }
        if let Some(r) = self.roi {
            let fits = r.width > 0
                && r.height > 0
                && (r.x as u64 + r.width as u64) <= width as u64
                && (r.y as u64 + r.height as u64) <= height as u64;
            if !fits {
                return Err(Error::Config(format!(
                    "`roi` x={}, y={}, width={}, height={} is not a non-empty region inside the \
                     {width}×{height} image (columns 0..{width}, rows 0..{height})",
                    r.x, r.y, r.width, r.height
                )));
            }
        }
        Ok(())
    }

    /// `window [-160, 240] HU`, or `[0, 1]` without a physical window.
    pub fn window_text(&self) -> String {
        match &self.window {
            Some(w) => format!(
                "window [{}, {}] {}",
                format_value(w.lo),
                format_value(w.hi),
                w.units
            )
            .trim_end()
            .to_string(),
            None => "window [0, 1]".into(),
        }
    }

    /// The title of an |error| panel: `|error| × 4`.
    pub fn error_title(&self) -> String {
        format!("|error| × {}", format_value(self.error_gain as f64))
    }

    /// The colour bar of |error| × k and posterior-std panels: display 1 is `1/k` of the
    /// window width, in its units.
    pub fn error_color_bar(&self) -> ColorBar {
        let (span, units) = match &self.window {
            Some(w) => (w.hi - w.lo, w.units.clone()),
            None => (1.0, String::new()),
        };
        ColorBar {
            lo: 0.0,
            hi: span / self.error_gain as f64,
            title: if units.is_empty() {
                "value".into()
            } else {
                units
            },
        }
    }
}

/// Draws `panels` (all the same size) in one row, with the region of interest of `cfg` boxed
/// and enlarged in a second row, a footer stating the window (and the error gain when
/// `show_gain`), and `color_bar` beside the last panel when given.
pub fn render(
    panels: &[Panel],
    color_bar: Option<&ColorBar>,
    show_gain: bool,
    cfg: &FigureConfig,
) -> Result<Figure> {
    let first = panels
        .first()
        .ok_or_else(|| Error::Invalid("a figure needs at least one panel".into()))?;
    let (_, h, w) = first.image.dim();
    for p in panels {
        let (c, ph, pw) = p.image.dim();
        if !(c == 1 || c == 3) || (ph, pw) != (h, w) || h == 0 || w == 0 {
            return Err(Error::Shape {
                what: format!("panel '{}'", p.title),
                expected: format!(
                    "a non-empty [1 or 3, {h}, {w}] image (the size of panel '{}')",
                    first.title
                ),
                actual: format!("{:?}", p.image.shape()),
            });
        }
    }
    cfg.check(h, w)?;
    let font = font();
    let (tpx, spx) = (PxScale::from(TITLE_PX), PxScale::from(SMALL_PX));
    let f = cfg.min_panel_px.div_ceil(h.max(w) as u32).max(1);
    let (pw, ph) = (w as u32 * f, h as u32 * f);
    let title_h = TITLE_PX as u32 + GAP;
    let caption_h = if panels.iter().any(|p| p.caption.is_some()) {
        SMALL_PX as u32 + GAP
    } else {
        0
    };
    let col_w = panels
        .iter()
        .flat_map(|p| {
            let t = text_size(tpx, &font, &p.title).0;
            let c = p
                .caption
                .as_deref()
                .map_or(0, |c| text_size(spx, &font, c).0);
            [t, c]
        })
        .max()
        .unwrap_or(0)
        .max(pw);
    // ROI row: the region enlarged by the largest integer factor that fits the panel.
    let roi = cfg.roi.map(|r| {
        let fr = (pw / r.width).min(ph / r.height).max(1);
        (r, fr)
    });
    let roi_h = roi.map_or(0, |(r, fr)| r.height * fr + GAP);
    // Colour bar column: bar + tick labels.
    let ticks: Vec<(f64, String)> = color_bar.map_or(Vec::new(), |b| {
        (0..=4)
            .map(|i| {
                let t = i as f64 / 4.0;
                (t, format_value(b.lo + t * (b.hi - b.lo)))
            })
            .collect()
    });
    let bar_col_w = color_bar.map_or(0, |b| {
        let labels = ticks
            .iter()
            .map(|(_, s)| text_size(spx, &font, s).0)
            .max()
            .unwrap_or(0);
        (BAR_W + 4 + labels).max(text_size(spx, &font, &b.title).0) + GAP
    });
    let mut footer_text = cfg.window_text();
    if show_gain {
        footer_text.push_str(&format!(
            "   |error| × {}",
            format_value(cfg.error_gain as f64)
        ));
    }
    if let Some(r) = cfg.roi {
        footer_text.push_str(&format!(
            "   zoom: x {}..{}, y {}..{}",
            r.x,
            r.x + r.width,
            r.y,
            r.y + r.height
        ));
    }
    let footer_w = text_size(spx, &font, &footer_text).0;
    let n = panels.len() as u32;
    let width = (GAP + n * (col_w + GAP) + bar_col_w).max(footer_w + 2 * GAP);
    let footer_y = GAP + title_h + ph + caption_h + GAP + roi_h;
    let footer_h = SMALL_PX as u32 + GAP;
    let height = footer_y + footer_h;
    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    let mut layouts = Vec::with_capacity(panels.len());
    for (i, p) in panels.iter().enumerate() {
        let x0 = GAP + i as u32 * (col_w + GAP);
        let title_rect = rect(x0, GAP, col_w, title_h);
        let tw = text_size(tpx, &font, &p.title).0;
        draw_text_mut(
            &mut img,
            TEXT,
            (x0 + (col_w - tw) / 2) as i32,
            (GAP + GAP / 2) as i32,
            tpx,
            &font,
            &p.title,
        );
        let py = GAP + title_h;
        let px = x0 + (col_w - pw) / 2;
        let native = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let (x, y) = (x as usize, y as usize);
            if p.image.dim().0 == 3 {
                let v = |c: usize| Colormap::Gray.color(p.image[[c, y, x]]).0[0];
                Rgb([v(0), v(1), v(2)])
            } else {
                p.colormap.color(p.image[[0, y, x]])
            }
        });
        let big = imageops::resize(&native, pw, ph, FilterType::Nearest);
        imageops::replace(&mut img, &big, px as i64, py as i64);
        let caption_rect = (caption_h > 0).then(|| rect(x0, py + ph, col_w, caption_h));
        if let Some(c) = &p.caption {
            let cw = text_size(spx, &font, c).0;
            draw_text_mut(
                &mut img,
                TEXT,
                (x0 + (col_w - cw) / 2) as i32,
                (py + ph + GAP / 2) as i32,
                spx,
                &font,
                c,
            );
        }
        let mut roi_rect = None;
        if let Some((r, fr)) = roi {
            draw_box(
                &mut img,
                rect(px + r.x * f, py + r.y * f, r.width * f, r.height * f),
            );
            let crop = imageops::crop_imm(&native, r.x, r.y, r.width, r.height).to_image();
            let zoom = imageops::resize(&crop, r.width * fr, r.height * fr, FilterType::Nearest);
            let (zx, zy) = (x0 + (col_w - r.width * fr) / 2, py + ph + caption_h + GAP);
            imageops::replace(&mut img, &zoom, zx as i64, zy as i64);
            draw_box(&mut img, rect(zx, zy, r.width * fr, r.height * fr));
            roi_rect = Some(rect(zx, zy, r.width * fr, r.height * fr));
        }
        layouts.push(PanelLayout {
            title: title_rect,
            image: rect(px, py, pw, ph),
            caption: caption_rect,
            roi: roi_rect,
        });
    }
    let mut bar_rect = None;
    if let Some(b) = color_bar {
        let bx = GAP + n * (col_w + GAP);
        let by = GAP + title_h;
        draw_text_mut(
            &mut img,
            TEXT,
            bx as i32,
            (GAP + GAP / 2) as i32,
            spx,
            &font,
            &b.title,
        );
        // Top = hi, bottom = lo.
        for y in 0..ph {
            let t = 1.0 - y as f32 / (ph - 1).max(1) as f32;
            let c = Colormap::Viridis.color(t);
            draw_filled_rect_mut(&mut img, rect(bx, by + y, BAR_W, 1), c);
        }
        for (t, label) in &ticks {
            let ty = by + ((1.0 - t) * (ph - 1) as f64).round() as u32;
            draw_filled_rect_mut(&mut img, rect(bx + BAR_W, ty, 4, 1), TEXT);
            let lh = SMALL_PX as u32;
            let ly = ty.saturating_sub(lh / 2).min(by + ph - lh);
            draw_text_mut(
                &mut img,
                TEXT,
                (bx + BAR_W + 6) as i32,
                ly as i32,
                spx,
                &font,
                label,
            );
        }
        bar_rect = Some(rect(bx, by, BAR_W, ph));
    }
    draw_text_mut(
        &mut img,
        TEXT,
        GAP as i32,
        (footer_y + GAP / 4) as i32,
        spx,
        &font,
        &footer_text,
    );
    Ok(Figure {
        image: img,
        panels: layouts,
        color_bar: bar_rect,
        footer: rect(0, footer_y, width, footer_h),
        scale: f,
    })
}

/// A 2-pixel box just inside `r`.
fn draw_box(img: &mut RgbImage, r: Rect) {
    draw_hollow_rect_mut(img, r, ROI_BOX);
    if r.width() > 2 && r.height() > 2 {
        draw_hollow_rect_mut(
            img,
            Rect::at(r.left() + 1, r.top() + 1).of_size(r.width() - 2, r.height() - 2),
            ROI_BOX,
        );
    }
}

/// `PSNR 31.20 dB  SSIM 0.874` (`PSNR ∞` for an exact reconstruction).
pub fn metrics_caption(psnr_db: f64, ssim: f64) -> String {
    let psnr = if psnr_db.is_finite() {
        format!("PSNR {psnr_db:.2} dB")
    } else {
        "PSNR ∞".into()
    };
    format!("{psnr}  SSIM {ssim:.3}")
}

/// The pixelwise mean over channels of `|a|`, `[1, H, W]` (the |error| or std of an RGB image
/// as one map).
fn channel_mean_abs(a: &Array3<f32>) -> Array3<f32> {
    a.mapv(f32::abs)
        .mean_axis(Axis(0))
        .expect("at least one channel")
        .insert_axis(Axis(0))
}

/// The comparison figure of a case: `truth` (if any), each `(method, image, caption)` and, with
/// a truth, the |error| × k of the last method (mean over channels); images `[C, H, W]` in
/// display units [0, 1].
pub fn comparison(
    truth: Option<&Array3<f32>>,
    methods: &[(String, Array3<f32>, Option<String>)],
    cfg: &FigureConfig,
) -> Result<Figure> {
    let mut panels = Vec::new();
    if let Some(t) = truth {
        panels.push(Panel::new("truth", t.clone()));
    }
    for (name, img, caption) in methods {
        let mut p = Panel::new(name.clone(), img.clone());
        p.caption = caption.clone();
        panels.push(p);
    }
    let error = match (truth, methods.last()) {
        (Some(t), Some((name, img, _))) if t.dim() == img.dim() => {
            let k = cfg.error_gain;
            let e = channel_mean_abs(&(img - t)).mapv(|v| (v * k).clamp(0.0, 1.0));
            Some(Panel::new(format!("{} ({name})", cfg.error_title()), e))
        }
        _ => None,
    };
    let gain = error.is_some();
    panels.extend(error);
    render(&panels, None, gain, cfg)
}

/// The uncertainty figure of one method: |error| × k (when a truth exists) beside the posterior
/// std × k, both through viridis on one colour bar (so a calibrated std map looks like the
/// error map); arrays `[C, H, W]` in the images' units, shown as their mean over channels.
pub fn uncertainty(
    method: &str,
    error: Option<&Array3<f32>>,
    std: &Array3<f32>,
    cfg: &FigureConfig,
) -> Result<Figure> {
    let k = cfg.error_gain;
    let scaled = |a: &Array3<f32>| channel_mean_abs(a).mapv(|v| (v * k).clamp(0.0, 1.0));
    let mut panels = Vec::new();
    if let Some(e) = error {
        panels.push(Panel {
            title: format!("{} ({method})", cfg.error_title()),
            image: scaled(e),
            caption: None,
            colormap: Colormap::Viridis,
        });
    }
    panels.push(Panel {
        title: format!("posterior std × {} ({method})", format_value(k as f64)),
        image: scaled(std),
        caption: None,
        colormap: Colormap::Viridis,
    });
    render(&panels, Some(&cfg.error_color_bar()), true, cfg)
}

/// Writes a figure as an 8-bit RGB PNG, atomically.
pub fn save_png(path: &Path, figure: &Figure) -> Result<()> {
    let img = &figure.image;
    write_atomic(path, |w| {
        image::codecs::png::PngEncoder::new(w)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::format(path, format!("writing PNG: {e}")))
    })
}
