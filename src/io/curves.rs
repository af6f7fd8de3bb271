//! Quality-vs-cost curves of a steps sweep (`reconstruct --steps 10,20,50,...`): PSNR and SSIM
//! against network evaluations (NFE per posterior sample) and against seconds per case, one line
//! per score method (its runs `NAME@N`), the baselines as dashed horizontal lines; log-scaled
//! x axes. Drawn with plotters into a PNG (through `image`) and an SVG, in the figures' font.
use crate::inverse::study::Summary;
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1000;

/// Line colours (matplotlib's `tab10`, dark enough on white): score methods first, then the
/// baselines.
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

fn colour(k: usize) -> RGBAColor {
    let (r, g, b) = COLOURS[k % COLOURS.len()];
    RGBColor(r, g, b).to_rgba()
}

/// One method's curve: `(nfe, seconds, psnr, ssim)` per run, in order of NFE.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub method: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// The swept methods (`NAME@N` with an NFE) as curves, and the others as `(name, psnr, ssim)`
/// levels.
pub fn sweep_curves(summaries: &[Summary]) -> (Vec<Curve>, Vec<(String, f64, f64)>) {
    let mut curves: Vec<Curve> = Vec::new();
    let mut levels = Vec::new();
    for s in summaries {
        match (s.method.split_once('@'), s.nfe) {
            (Some((name, _)), Some(nfe)) => {
                let p = (nfe as f64, s.seconds_mean, s.psnr_mean, s.ssim_mean);
                match curves.iter_mut().find(|c| c.method == name) {
                    Some(c) => c.points.push(p),
                    None => curves.push(Curve {
                        method: name.to_string(),
                        points: vec![p],
                    }),
                }
            }
            _ => levels.push((s.method.clone(), s.psnr_mean, s.ssim_mean)),
        }
    }
    for c in &mut curves {
        c.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    (curves, levels)
}

/// Whether the summaries hold a steps sweep (a method run at two or more `N`).
pub fn is_sweep(summaries: &[Summary]) -> bool {
    sweep_curves(summaries).0.iter().any(|c| c.points.len() > 1)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled DejaVu Sans is valid TrueType (checked by the figure tests).
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            super::figure::FONT_BYTES,
        );
    });
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Invalid(format!("sweep plot: {e:?}"))
}

/// `[lo, hi]` of `v` widened by 5 % (and made non-empty).
fn span(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3 * hi.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// Draws the four panels on `root`.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curves: &[Curve],
    levels: &[(String, f64, f64)],
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 26)).map_err(plot_err)?;
    let panels = root.split_evenly((2, 2));
    // (x: 0 NFE / 1 seconds, y: 2 PSNR / 3 SSIM)
    let axes = [(0, 2), (0, 3), (1, 2), (1, 3)];
    for (area, &(xi, yi)) in panels.iter().zip(&axes) {
        let pick = |p: &(f64, f64, f64, f64), i: usize| [p.0, p.1, p.2, p.3][i];
        let xs = curves
            .iter()
            .flat_map(|c| c.points.iter().map(move |p| pick(p, xi)));
        let (xlo, xhi) = {
            let (lo, hi) = span(xs.filter(|&x| x > 0.0));
            (lo.max(1e-3), hi.max(lo.max(1e-3) * 2.0))
        };
        let ys = curves
            .iter()
            .flat_map(|c| c.points.iter().map(move |p| pick(p, yi)))
            .chain(levels.iter().map(|l| if yi == 2 { l.1 } else { l.2 }));
        let (ylo, yhi) = span(ys);
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(if xi == 0 {
                "network evaluations per sample (NFE)"
            } else {
                "seconds per case"
            })
            .y_desc(if yi == 2 { "PSNR (dB)" } else { "SSIM" })
            .x_labels(8)
            .x_label_formatter(&|v| {
                if *v >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            })
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(plot_err)?;
        for (k, c) in curves.iter().enumerate() {
            let colour = colour(k);
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (pick(p, xi), pick(p, yi)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(3)))
                .map_err(plot_err)?
                .label(c.method.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 5, colour.filled())))
                .map_err(plot_err)?;
        }
        for (k, (name, psnr, ssim)) in levels.iter().enumerate() {
            let colour = colour(curves.len() + k);
            let y = if yi == 2 { *psnr } else { *ssim };
            // Dashes: short segments along the log axis.
            let n = 40;
            let segs: Vec<Vec<(f64, f64)>> = (0..n)
                .step_by(2)
                .map(|i| {
                    let at = |j: usize| xlo * (xhi / xlo).powf(j as f64 / n as f64);
                    vec![(at(i), y), (at(i + 1), y)]
                })
                .collect();
            chart
                .draw_series(
                    segs.into_iter()
                        .map(|s| PathElement::new(s, colour.stroke_width(2))),
                )
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 10, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The sweep's figure as `(PNG bytes, SVG text)`.
pub fn sweep_figure(title: &str, summaries: &[Summary]) -> Result<(Vec<u8>, String)> {
    register_font();
    let (curves, levels) = sweep_curves(summaries);
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, title, &curves, &levels)?;
    }
    let img = image::RgbImage::from_raw(WIDTH, HEIGHT, rgb)
        .ok_or_else(|| Error::Invalid("sweep plot: buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("sweep plot: PNG encoding: {e}")))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, title, &curves, &levels)?;
    }
    Ok((png, svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(method: &str, nfe: Option<usize>, psnr: f64) -> Summary {
        Summary {
            method: method.into(),
            n: 2,
            psnr_mean: psnr,
            psnr_std: 0.5,
            ssim_mean: psnr / 40.0,
            ssim_std: 0.01,
            seconds_mean: nfe.map_or(0.1, |n| n as f64 * 0.05),
            nfe,
        }
    }

    #[test]
    fn sweep_rows_become_curves_and_baselines_levels() {
        let s = [
            summary("fbp", None, 25.0),
            summary("ddim@50", Some(50), 33.0),
            summary("ddim@10", Some(10), 30.0),
            summary("score@100", Some(200), 34.0),
        ];
        let (curves, levels) = sweep_curves(&s);
        assert_eq!(curves.len(), 2);
        assert_eq!(curves[0].method, "ddim");
        assert_eq!(curves[0].points[0].0, 10.0);
        assert_eq!(levels, vec![("fbp".to_string(), 25.0, 25.0 / 40.0)]);
        assert!(is_sweep(&s));
        assert!(!is_sweep(&s[..2]));
        let (png, svg) = sweep_figure("test", &s).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        assert!(svg.contains("<svg") && svg.contains("ddim") && svg.contains("PSNR"));
    }
}
