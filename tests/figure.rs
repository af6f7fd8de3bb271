//! Labelled figures (`io::figure`): panel size, labels where they belong, captions carrying the
//! numbers passed in, a monotone colour bar, the region-of-interest row only when asked, and
//! clear errors for a region outside the image.
use image::{Rgb, RgbImage};
use imageproc::rect::Rect;
use ndarray::Array3;
use scoreinv::inverse::study;
use scoreinv::inverse::tasks::{self, Reconstruction};
use scoreinv::io::output::{OutputDir, Reuse};
use scoreinv::io::{
    self,
    figure::{self, metrics_caption, Colormap, DisplayWindow, FigureConfig, Roi, TEXT},
};

/// A 64×48 gray test image `[1, 48, 64]`: a gradient with a bright square.
fn picture(seed: f32) -> Array3<f32> {
    Array3::from_shape_fn((1, 48, 64), |(_, y, x)| {
        let base = (x as f32 / 63.0) * 0.5 + seed * 0.1;
        if (10..20).contains(&y) && (30..40).contains(&x) {
            0.95
        } else {
            base
        }
    })
}

/// Text pixels inside `r`: light gray (text is white, antialiased on black; panels lie
/// outside the strips checked).
fn text_pixels(img: &RgbImage, r: Rect) -> usize {
    let mut n = 0;
    for y in r.top()..=r.bottom() {
        for x in r.left()..=r.right() {
            let p = img.get_pixel(x as u32, y as u32).0;
            if p[0] >= TEXT.0[0] / 2 && p[0] == p[1] && p[1] == p[2] {
                n += 1;
            }
        }
    }
    n
}

fn contains(r: Rect, x: u32, y: u32) -> bool {
    (r.left()..=r.right()).contains(&(x as i32)) && (r.top()..=r.bottom()).contains(&(y as i32))
}

fn methods(psnr_tv: f64) -> Vec<(String, Array3<f32>, Option<String>)> {
    vec![
        (
            "fbp".into(),
            picture(1.0),
            Some(metrics_caption(24.31, 0.712)),
        ),
        (
            "tv".into(),
            picture(2.0),
            Some(metrics_caption(psnr_tv, 0.801)),
        ),
    ]
}

#[test]
fn panels_are_upscaled_to_at_least_256_pixels_by_an_integer_factor() {
    let truth = picture(0.0);
    let fig = figure::comparison(Some(&truth), &methods(28.5), &FigureConfig::default()).unwrap();
    // truth, fbp, tv, |error|
    assert_eq!(fig.panels.len(), 4);
    assert_eq!(fig.scale, 4, "64 px → 256 px needs factor 4");
    for p in &fig.panels {
        assert!(p.image.width().max(p.image.height()) >= 256, "{p:?}");
        assert_eq!(p.image.width(), 64 * fig.scale);
        assert_eq!(p.image.height(), 48 * fig.scale);
    }
    // Nearest-neighbour upscaling: each source pixel becomes an f×f block of its gray value.
    let p = fig.panels[0].image;
    let (x0, y0) = (p.left() as u32, p.top() as u32);
    for (sy, sx) in [(0usize, 0usize), (15, 35), (47, 63), (30, 5)] {
        let g = (truth[[0, sy, sx]] * 255.0).round() as u8;
        for dy in 0..fig.scale {
            for dx in 0..fig.scale {
                let px = fig.image.get_pixel(
                    x0 + sx as u32 * fig.scale + dx,
                    y0 + sy as u32 * fig.scale + dy,
                );
                assert_eq!(px, &Rgb([g, g, g]), "source pixel ({sy}, {sx})");
            }
        }
    }
    // A smaller minimum gives a smaller factor.
    let cfg = FigureConfig {
        min_panel_px: 100,
        ..FigureConfig::default()
    };
    let fig = figure::comparison(Some(&truth), &methods(28.5), &cfg).unwrap();
    assert_eq!(fig.scale, 2);
}

#[test]
fn every_panel_has_its_title_and_captions_only_where_given() {
    let truth = picture(0.0);
    let fig = figure::comparison(Some(&truth), &methods(28.5), &FigureConfig::default()).unwrap();
    for (i, p) in fig.panels.iter().enumerate() {
        assert!(
            text_pixels(&fig.image, p.title) > 20,
            "no title text above panel {i}"
        );
    }
    // fbp and tv carry PSNR/SSIM captions; the truth and the error map do not (control).
    let cap = |i: usize| fig.panels[i].caption.expect("caption strip");
    assert!(text_pixels(&fig.image, cap(1)) > 20);
    assert!(text_pixels(&fig.image, cap(2)) > 20);
    assert_eq!(text_pixels(&fig.image, cap(0)), 0, "truth has no caption");
    assert_eq!(text_pixels(&fig.image, cap(3)), 0, "|error| has no caption");
    // The footer states the window and the gain.
    assert!(text_pixels(&fig.image, fig.footer) > 20);
}

#[test]
fn the_caption_under_a_panel_is_the_value_passed_in() {
    let truth = picture(0.0);
    let cfg = FigureConfig::default();
    let a = figure::comparison(Some(&truth), &methods(28.5), &cfg).unwrap();
    let b = figure::comparison(Some(&truth), &methods(31.75), &cfg).unwrap();
    let same = figure::comparison(Some(&truth), &methods(28.5), &cfg).unwrap();
    assert_eq!(a.image, same.image, "drawing is deterministic");
    assert_eq!(a.image.dimensions(), b.image.dimensions());
    let strip = a.panels[1 + 1].caption.unwrap();
    let mut changed = 0;
    for (x, y, p) in a.image.enumerate_pixels() {
        if p != b.image.get_pixel(x, y) {
            assert!(
                contains(strip, x, y),
                "pixel ({x}, {y}) outside the caption of the tv panel changed"
            );
            changed += 1;
        }
    }
    assert!(changed > 10, "a different PSNR must change the caption");
    assert_eq!(metrics_caption(28.5, 0.801), "PSNR 28.50 dB  SSIM 0.801");
    assert_eq!(metrics_caption(f64::INFINITY, 1.0), "PSNR ∞  SSIM 1.000");
}

#[test]
fn window_and_gain_are_stated() {
    let mut cfg = FigureConfig::default();
    assert_eq!(cfg.window_text(), "window [0, 1]");
    assert_eq!(cfg.error_title(), "|error| × 4");
    let bar = cfg.error_color_bar();
    assert_eq!((bar.lo, bar.hi, bar.title.as_str()), (0.0, 0.25, "value"));
    cfg.window = Some(DisplayWindow {
        lo: -160.0,
        hi: 240.0,
        units: "HU".into(),
    });
    cfg.error_gain = 2.5;
    assert_eq!(cfg.window_text(), "window [-160, 240] HU");
    assert_eq!(cfg.error_title(), "|error| × 2.5");
    // The colour bar of |error| × k spans 1/k of the window width, in its units.
    let bar = cfg.error_color_bar();
    assert_eq!((bar.lo, bar.hi), (0.0, 160.0));
    assert_eq!(bar.title, "HU");
    // Different window text → different footer, nothing else.
    let truth = picture(0.0);
    let a = figure::comparison(Some(&truth), &methods(28.5), &cfg).unwrap();
    cfg.window.as_mut().unwrap().hi = 250.0;
    let b = figure::comparison(Some(&truth), &methods(28.5), &cfg).unwrap();
    let diff: Vec<(u32, u32)> = a
        .image
        .enumerate_pixels()
        .filter(|(x, y, p)| *p != b.image.get_pixel(*x, *y))
        .map(|(x, y, _)| (x, y))
        .collect();
    assert!(!diff.is_empty());
    assert!(diff.iter().all(|&(x, y)| contains(a.footer, x, y)));
}

#[test]
fn the_colour_bar_is_monotone_and_labelled() {
    let err = picture(0.0).mapv(|v| v * 0.1);
    let std = picture(1.0).mapv(|v| v * 0.05);
    let fig = figure::uncertainty("score", Some(&err), &std, &FigureConfig::default()).unwrap();
    assert_eq!(fig.panels.len(), 2, "|error| beside the std");
    let bar = fig.color_bar.expect("a colour bar");
    assert_eq!(bar.height(), fig.panels[0].image.height());
    // Read back through the colormap (nearest of 1024 viridis colours), the bar's value rises
    // from 0 at the bottom to 1 at the top, never falling by more than the 8-bit rounding.
    let x = (bar.left() + bar.width() as i32 / 2) as u32;
    let table: Vec<[u8; 3]> = (0..1024)
        .map(|i| Colormap::Viridis.color(i as f32 / 1023.0).0)
        .collect();
    let value = |y: u32| {
        let p = fig.image.get_pixel(x, y).0;
        let d = |c: &[u8; 3]| {
            (0..3)
                .map(|k| (c[k] as i32 - p[k] as i32).pow(2))
                .sum::<i32>()
        };
        let i = (0..1024).min_by_key(|&i| d(&table[i])).unwrap();
        i as f64 / 1023.0
    };
    let (top, bottom) = (bar.top() as u32, bar.bottom() as u32);
    assert!(value(bottom) < 0.01 && value(top) > 0.99);
    let mut prev = value(bottom);
    for y in (top..bottom).rev() {
        let v = value(y);
        assert!(v >= prev - 0.01, "the bar falls at row {y}: {v} < {prev}");
        prev = prev.max(v);
    }
    // Coarsely, strictly rising: every 16 rows up is brighter.
    for y in (top + 16..=bottom).step_by(16) {
        assert!(value(y - 16) > value(y), "row {y}");
    }
    assert_eq!(
        fig.image.get_pixel(x, bottom),
        &Colormap::Viridis.color(0.0)
    );
    assert_eq!(fig.image.get_pixel(x, top), &Colormap::Viridis.color(1.0));
    // Tick labels to the right of the bar.
    let labels = Rect::at(bar.right() + 1, bar.top())
        .of_size(fig.image.width() - bar.right() as u32 - 1, bar.height());
    assert!(text_pixels(&fig.image, labels) > 20);
    // A std map equal to the error map draws the same colours in both panels.
    let same = figure::uncertainty("score", Some(&err), &err, &FigureConfig::default()).unwrap();
    let (a, b) = (same.panels[0].image, same.panels[1].image);
    for y in 0..a.height() {
        for x in 0..a.width() {
            assert_eq!(
                same.image
                    .get_pixel(a.left() as u32 + x, a.top() as u32 + y),
                same.image
                    .get_pixel(b.left() as u32 + x, b.top() as u32 + y)
            );
        }
    }
}

#[test]
fn the_zoomed_region_appears_only_when_asked() {
    let truth = picture(0.0);
    let plain = figure::comparison(Some(&truth), &methods(28.5), &FigureConfig::default()).unwrap();
    assert!(plain.panels.iter().all(|p| p.roi.is_none()));
    let roi_color = |img: &RgbImage| img.pixels().filter(|p| **p == figure::ROI_BOX).count();
    assert_eq!(roi_color(&plain.image), 0, "no box without a region");
    let cfg = FigureConfig {
        roi: Some(Roi {
            x: 28,
            y: 8,
            width: 16,
            height: 16,
        }),
        ..FigureConfig::default()
    };
    let fig = figure::comparison(Some(&truth), &methods(28.5), &cfg).unwrap();
    assert!(fig.image.height() > plain.image.height(), "an extra row");
    assert!(roi_color(&fig.image) > 0, "the region is boxed");
    for p in &fig.panels {
        let z = p.roi.expect("a zoomed panel under every panel");
        assert!(z.top() > p.image.bottom(), "below the panel");
        // 16 px enlarged by the largest factor that fits the 256×192 panel: 12.
        assert_eq!((z.width(), z.height()), (192, 192));
    }
    // The zoomed truth shows the bright square: source (15, 35) is inside the region at
    // (15 − 8, 35 − 28) → enlarged ×12, off the 2-pixel box.
    let z = fig.panels[0].roi.unwrap();
    let px = fig
        .image
        .get_pixel(z.left() as u32 + 7 * 12 + 6, z.top() as u32 + 7 * 12 + 6);
    let g = (0.95f32 * 255.0).round() as u8;
    assert_eq!(px, &Rgb([g, g, g]));
}

#[test]
fn a_region_outside_the_image_is_refused_naming_the_field() {
    let truth = picture(0.0);
    for roi in [
        Roi {
            x: 60,
            y: 0,
            width: 10,
            height: 10,
        },
        Roi {
            x: 0,
            y: 40,
            width: 10,
            height: 10,
        },
        Roi {
            x: 0,
            y: 0,
            width: 0,
            height: 10,
        },
    ] {
        let cfg = FigureConfig {
            roi: Some(roi),
            ..FigureConfig::default()
        };
        let err = figure::comparison(Some(&truth), &methods(28.5), &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`roi`"), "{err}");
        assert!(err.contains("64×48"), "{err}");
    }
    // A region touching the far corner is inside.
    let cfg = FigureConfig {
        roi: Some(Roi {
            x: 54,
            y: 38,
            width: 10,
            height: 10,
        }),
        ..FigureConfig::default()
    };
    assert!(figure::comparison(Some(&truth), &methods(28.5), &cfg).is_ok());
    let bad_gain = FigureConfig {
        error_gain: 0.0,
        ..FigureConfig::default()
    };
    let err = figure::comparison(Some(&truth), &methods(28.5), &bad_gain).unwrap_err();
    assert!(err.to_string().contains("`error_gain`"), "{err}");
}

#[test]
fn measured_data_figures_have_no_metrics_and_no_error_panel() {
    let recons = vec![
        ("fbp".to_string(), picture(1.0), None),
        ("score".to_string(), picture(2.0), None),
    ];
    let fig = figure::comparison(None, &recons, &FigureConfig::default()).unwrap();
    assert_eq!(fig.panels.len(), 2);
    assert!(fig.panels.iter().all(|p| p.caption.is_none()));
    // Panels of different sizes are refused.
    let bad = vec![
        ("fbp".to_string(), picture(1.0), None),
        ("tv".to_string(), Array3::zeros((1, 10, 10)), None),
    ];
    let err = figure::comparison(None, &bad, &FigureConfig::default()).unwrap_err();
    assert!(err.to_string().contains("panel 'tv'"), "{err}");
}

#[test]
fn figures_are_written_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.png");
    let fig = figure::comparison(
        Some(&picture(0.0)),
        &methods(28.5),
        &FigureConfig::default(),
    )
    .unwrap();
    figure::save_png(&path, &fig).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, fig.image);
}

#[test]
fn colour_images_are_drawn_in_colour_and_their_error_is_one_map() {
    let truth = Array3::from_shape_fn((3, 32, 32), |(c, y, _)| {
        [0.9, 0.2, 0.1][c] * (y as f32 / 31.0)
    });
    let recon = truth.mapv(|v| (v + 0.05).min(1.0));
    let fig = figure::comparison(
        Some(&truth),
        &[("colorize".into(), recon, None)],
        &FigureConfig::default(),
    )
    .unwrap();
    assert_eq!(fig.scale, 8);
    let p = fig.panels[0].image;
    let px = fig
        .image
        .get_pixel(p.left() as u32 + 100, p.bottom() as u32)
        .0;
    assert_eq!(px, [230, 51, 26], "the truth's bottom row in RGB");
    // |error| × 4 of 0.05 in every channel (mean over channels) is gray 0.2.
    let e = fig.panels[2].image;
    let px = fig
        .image
        .get_pixel(e.left() as u32 + 3, e.top() as u32 + 3)
        .0;
    assert_eq!(px, [51, 51, 51]);
}

/// A case as a study produces it: truth, two methods (one with a posterior std), records.
fn case_output() -> study::CaseOutput {
    let t = |a: &Array3<f32>| io::array_to_tensor(a);
    let truth = picture(0.0);
    let fbp = picture(1.0);
    let score = picture(2.0);
    let record = |m: &str, psnr_db: f64, ssim: f64| study::Record {
        case: "phantom".into(),
        method: m.into(),
        psnr_db,
        ssim,
        nrmse: None,
        seconds: 0.0,
        typicality: None,
        typicality_threshold: None,
        nfe: None,
    };
    study::CaseOutput {
        name: "phantom".into(),
        truth: t(&truth),
        recons: vec![("fbp".into(), t(&fbp)), ("score".into(), t(&score))],
        stds: vec![("score".into(), t(&truth.mapv(|v| v * 0.02)))],
        records: vec![record("fbp", 21.5, 0.61), record("score", 27.25, 0.83)],
        info: Default::default(),
    }
}

#[test]
fn a_study_case_figure_carries_the_recorded_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let mut od = OutputDir::claim(&out, "test", &[], Reuse::Overwrite).unwrap();
    let case = case_output();
    let cfg = FigureConfig {
        roi: Some(Roi {
            x: 30,
            y: 10,
            width: 10,
            height: 10,
        }),
        ..FigureConfig::default()
    };
    study::write_case(&mut od, &case, &cfg).unwrap();
    let png = image::open(out.join("phantom.png")).unwrap().to_rgb8();
    // The same figure drawn from the records' numbers: PSNR/SSIM under fbp and score.
    let want = figure::comparison(
        Some(&picture(0.0)),
        &[
            (
                "fbp".into(),
                picture(1.0),
                Some(metrics_caption(21.5, 0.61)),
            ),
            (
                "score".into(),
                picture(2.0),
                Some(metrics_caption(27.25, 0.83)),
            ),
        ],
        &cfg,
    )
    .unwrap();
    assert_eq!(png, want.image);
    // Control: other numbers give another picture.
    let other = figure::comparison(
        Some(&picture(0.0)),
        &[
            (
                "fbp".into(),
                picture(1.0),
                Some(metrics_caption(21.5, 0.61)),
            ),
            (
                "score".into(),
                picture(2.0),
                Some(metrics_caption(27.0, 0.83)),
            ),
        ],
        &cfg,
    )
    .unwrap();
    assert_ne!(png, other.image);
    // The std figure: |error| beside std with a colour bar, at panel size.
    let std_png = image::open(out.join("phantom_score_std.png"))
        .unwrap()
        .to_rgb8();
    assert!(std_png.width() >= 2 * 256 && std_png.height() >= 192);
    assert!(out.join("phantom_score_std.npy").is_file());
    // One figure per case, nothing else as PNG.
    let pngs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .collect();
    assert_eq!(pngs.len(), 2, "{pngs:?}");
}

#[test]
fn measured_reconstructions_state_the_range_shown() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recon");
    let mut od = OutputDir::claim(&out, "test", &[], Reuse::Overwrite).unwrap();
    let recons = vec![
        Reconstruction {
            method: "fbp".into(),
            image: io::array_to_tensor(&picture(1.0).mapv(|v| v * 2.0)),
            seconds: 0.0,
            std: None,
            typicality: None,
        },
        Reconstruction {
            method: "tv".into(),
            image: io::array_to_tensor(&picture(2.0)),
            seconds: 0.0,
            std: None,
            typicality: None,
        },
    ];
    tasks::write_reconstructions(&mut od, "sino", &recons, &FigureConfig::default(), None).unwrap();
    let png = image::open(out.join("sino.png")).unwrap().to_rgb8();
    // Jointly scaled by the peak (2 × 0.95 = 1.9): the window shown is [0, 1.9].
    let cfg = FigureConfig {
        window: Some(DisplayWindow {
            lo: 0.0,
            hi: 1.9,
            units: String::new(),
        }),
        ..FigureConfig::default()
    };
    let want = figure::comparison(
        None,
        &[
            ("fbp".into(), picture(1.0).mapv(|v| v * 2.0 / 1.9), None),
            ("tv".into(), picture(2.0).mapv(|v| v / 1.9), None),
        ],
        &cfg,
    )
    .unwrap();
    assert_eq!(png.dimensions(), want.image.dimensions());
    let differing = png
        .pixels()
        .zip(want.image.pixels())
        .filter(|(a, b)| a != b)
        .count();
    // f32 rounding of the division may move a few gray levels by one, nothing more.
    assert!(differing < png.len() / 3 / 100, "{differing} pixels differ");
    assert_eq!(cfg.window_text(), "window [0, 1.9]");
}

#[test]
fn a_study_refuses_a_region_outside_its_images_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("pic.png");
    io::write_image(&gt, &io::Image::chw(picture(0.0))).unwrap();
    let task = (tasks::entry("inpaint").unwrap().from_json)(serde_json::json!({})).unwrap();
    let cfg = study::StudyConfig {
        ground_truth: vec![gt.display().to_string()],
        ..Default::default()
    };
    let out = dir.path().join("study");
    let mut output = study::StudyOutput {
        out: out.clone(),
        reuse: Reuse::Overwrite,
        shard: None,
        figure: FigureConfig {
            roi: Some(Roi {
                x: 60,
                y: 0,
                width: 10,
                height: 10,
            }),
            ..FigureConfig::default()
        },
    };
    let err = study::run_study(task.as_ref(), &cfg, &output, tch::Device::Cpu, &mut |_| {})
        .err()
        .expect("a region outside the 64×48 image is refused")
        .to_string();
    assert!(err.contains("`roi`") && err.contains("64×48"), "{err}");
    assert!(!out.exists(), "nothing was written");
    // Control: the same study with the region inside runs and draws it.
    output.figure.roi = Some(Roi {
        x: 50,
        y: 0,
        width: 10,
        height: 10,
    });
    study::run_study(task.as_ref(), &cfg, &output, tch::Device::Cpu, &mut |_| {}).unwrap();
    let png = image::open(out.join("pic.png")).unwrap().to_rgb8();
    assert!(png.pixels().any(|p| *p == figure::ROI_BOX));
}
