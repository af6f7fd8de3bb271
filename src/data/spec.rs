//! The data-spec grammar: one syntax for what `scoreinv train --data` trains on and what
//! `--ground-truth` evaluates on, parsed here once ([`Spec::parse`]) and read by
//! [`crate::train::data::DataSource`] (a training set) and [`crate::data::cases`] (evaluation
//! cases).
//!
//! ```text
//! SPEC  := PART ( '+' PART )*                     parts joined in order
//! SEL   := K | A..B | A..B:STEP                   one index, or A ≤ i < B in steps
//! PART  := phantom:shepp-logan
//!        | phantom:ellipses:SEL
//!        | fashion-mnist[:train|:test][:SEL]
//!        | invesalius[:FILE.inv3][:z=SEL]
//!        | nifti:FILE[,FILE…] | nifti-crop:FILE[,FILE…] | dicom:SERIES|FILE[,…]
//!        | gaussian2d[:N] | photos:N:PATH[,PATH…]
//!        | FILE[#t=K][#z=SEL | #y=K | #x=K] | FOLDER
//!        | hu:PART                                 evaluation: the values are HU
//! ```
//!
//! | part | training set (`--data`) | evaluation cases (`--ground-truth`) |
//! |---|---|---|
//! | `phantom:shepp-logan` | the modified Shepp–Logan phantom | the same |
//! | `phantom:ellipses:SEL` | random-ellipse phantoms of the training stream: `N` = the first N, `A..B` = numbers A to B−1 | held-out phantoms of seeds SEL (a stream the training never draws from) |
//! | `fashion-mnist[…]` | the training set (`:test` the test set), rows SEL | the test set (`:train` the training set), rows SEL |
//! | `invesalius[:FILE][:z=SEL]` | the training slices of the InVesalius head (all three orientations outside the held-out axial block) | axial slices SEL (all without `z=`) |
//! | `nifti:`, `nifti-crop:` | axial slices of the volumes (`-crop`: each cropped to its foreground) | every slice of each volume |
//! | `dicom:` | the slices of each series or file | the same |
//! | `gaussian2d[:N]`, `photos:N:…` | N samples / N random crops | — (training data only) |
//! | `FILE`, `FOLDER` | a `.npy` stack, an IDX file, a folder of images or IDX files | a picture or every slice of a volume; a folder's pictures or its DICOM series |
//!
//! | `FILE#t=K` | — | time point K of a 4-D NIfTI (x, y, z, t), then as a 3-D volume; `FILE#t=K#z=SEL` its slices SEL (a 4-D file without `#t=` is refused) |
//! | `hu:PART` | — | the same cases, the values read as Hounsfield units (NIfTI or NPY CT, which do not say so; DICOM CT and `.inv3` are HU anyway): windowed for the prior, outputs written back in HU |
//!
//! The time point comes first and is joined to a slice selector with another `#`, since a
//! comma separates specs. `--ground-truth` also takes several specs, separated by commas or by
//! repeating the flag.
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// A selection of indices: `K`, `A..B` or `A..B:STEP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sel {
    One(usize),
    Range {
        start: usize,
        end: usize,
        step: usize,
    },
}

impl Sel {
    /// Parses `K`, `A..B` or `A..B:STEP`; `what` names the spec in messages.
    pub fn parse(s: &str, what: &str) -> Result<Self> {
        let bad = || Error::Config(format!("{what}: '{s}' is neither N, A..B nor A..B:STEP"));
        let (range, step) = match s.split_once(':') {
            Some((r, st)) => (r, Some(st.trim().parse::<usize>().map_err(|_| bad())?)),
            None => (s, None),
        };
        if step == Some(0) {
            return Err(Error::Config(format!("{what}: step must be at least 1")));
        }
        match range.split_once("..") {
            Some((a, b)) => {
                let start: usize = a.trim().parse().map_err(|_| bad())?;
                let end: usize = b.trim().parse().map_err(|_| bad())?;
                if end <= start {
                    return Err(Error::Config(format!("{what}: empty range {start}..{end}")));
                }
                Ok(Sel::Range {
                    start,
                    end,
                    step: step.unwrap_or(1),
                })
            }
            None if step.is_some() => Err(bad()),
            None => Ok(Sel::One(range.trim().parse().map_err(|_| bad())?)),
        }
    }

    /// The indices as evaluation reads them: `K` alone, or the range.
    pub fn indices(&self) -> Vec<usize> {
        match *self {
            Sel::One(k) => vec![k],
            Sel::Range { start, end, step } => (start..end).step_by(step).collect(),
        }
    }

    /// The indices as a training set reads them: `N` = the first N (`0..N`), or the range.
    pub fn count_or_range(&self) -> Vec<usize> {
        match *self {
            Sel::One(n) => (0..n).collect(),
            r => r.indices(),
        }
    }
}

/// A split of the Fashion-MNIST data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One parsed spec (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    SheppLogan,
    Ellipses(Sel),
    FashionMnist {
        split: Option<Split>,
        sel: Option<Sel>,
    },
    Invesalius {
        file: Option<PathBuf>,
        z: Option<Sel>,
    },
    Nifti {
        paths: Vec<PathBuf>,
        crop: bool,
    },
    Dicom(Vec<PathBuf>),
    Gaussian2d(Option<usize>),
    Photos {
        n: usize,
        paths: Vec<PathBuf>,
    },
    /// A file (with its selector, if any, as written) or a folder.
    Path(String),
    /// `A+B`.
    Join(Vec<Spec>),
}

fn list(s: &str) -> Vec<PathBuf> {
    s.split(',').map(PathBuf::from).collect()
}

impl Spec {
    /// Parses a spec (see the module doc). Files are not opened here; a `+` inside the name of
    /// an existing path is part of the name.
    pub fn parse(spec: &str) -> Result<Self> {
        if spec.contains('+') && !Path::new(spec).exists() {
            let parts: Vec<&str> = spec.split('+').collect();
            if let Some(empty) = parts.iter().position(|p| p.trim().is_empty()) {
                return Err(Error::Config(format!(
                    "{spec}: part {} of the '+'-joined specs is empty",
                    empty + 1
                )));
            }
            return Ok(Spec::Join(
                parts
                    .into_iter()
                    .map(|p| Spec::parse(p.trim()))
                    .collect::<Result<_>>()?,
            ));
        }
        if let Some(rest) = spec.strip_prefix("phantom:") {
            return match rest {
                "shepp-logan" => Ok(Spec::SheppLogan),
                r => match r.strip_prefix("ellipses:") {
                    Some(sel) => Ok(Spec::Ellipses(Sel::parse(sel, spec)?)),
                    None => Err(Error::Config(format!(
                        "unknown phantom '{rest}': expected shepp-logan or ellipses:SEL \
                         (K, A..B)"
                    ))),
                },
            };
        }
        if spec == "fashion-mnist" || spec.starts_with("fashion-mnist:") {
            let mut split = None;
            let mut sel = None;
            let mut rest = spec.strip_prefix("fashion-mnist").unwrap_or("");
            rest = rest.strip_prefix(':').unwrap_or(rest);
            for (name, s) in [("train", Split::Train), ("test", Split::Test)] {
                if rest == name {
                    split = Some(s);
                    rest = "";
                } else if let Some(r) = rest.strip_prefix(&format!("{name}:")) {
                    split = Some(s);
                    rest = r;
                }
            }
            if !rest.is_empty() {
                sel = Some(Sel::parse(rest, spec)?);
            }
            return Ok(Spec::FashionMnist { split, sel });
        }
        if spec == "invesalius" || spec.starts_with("invesalius:") {
            let rest = spec.strip_prefix("invesalius").unwrap_or("");
            let rest = rest.strip_prefix(':').unwrap_or(rest);
            let (file, z) = if let Some(z) = rest.strip_prefix("z=") {
                ("", Some(z))
            } else if let Some((f, z)) = rest.rsplit_once(":z=") {
                (f, Some(z))
            } else {
                (rest, None)
            };
            if file.contains('=') && !Path::new(file).exists() {
                return Err(Error::Config(format!(
                    "'{spec}': expected invesalius[:FILE.inv3][:z=SEL], e.g. invesalius:z=66..80"
                )));
            }
            return Ok(Spec::Invesalius {
                file: (!file.is_empty()).then(|| PathBuf::from(file)),
                z: z.map(|z| Sel::parse(z, spec)).transpose()?,
            });
        }
        if let Some(l) = spec.strip_prefix("nifti:") {
            return Ok(Spec::Nifti {
                paths: list(l),
                crop: false,
            });
        }
        if let Some(l) = spec.strip_prefix("nifti-crop:") {
            return Ok(Spec::Nifti {
                paths: list(l),
                crop: true,
            });
        }
        if let Some(l) = spec.strip_prefix("dicom:") {
            return Ok(Spec::Dicom(list(l)));
        }
        if let Some(rest) = spec.strip_prefix("gaussian2d") {
            return match rest.strip_prefix(':') {
                Some(n) => n
                    .parse::<usize>()
                    .map(|n| Spec::Gaussian2d(Some(n)))
                    .map_err(|_| Error::Config(format!("{spec}: '{n}' is not a sample count"))),
                None if rest.is_empty() => Ok(Spec::Gaussian2d(None)),
                None => Err(Error::Config(format!("{spec}: expected gaussian2d[:N]"))),
            };
        }
        if let Some(rest) = spec.strip_prefix("photos:") {
            let (n, l) = rest
                .split_once(':')
                .ok_or_else(|| Error::Config(format!("{spec}: expected photos:N:PATH[,PATH…]")))?;
            let n = n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                Error::Config(format!("{spec}: '{n}' is not a positive crop count"))
            })?;
            return Ok(Spec::Photos { n, paths: list(l) });
        }
        Ok(Spec::Path(spec.to_string()))
    }

    /// The files and folders the spec reads (none for synthetic data; a selector is dropped),
    /// so that outputs can be kept apart from inputs.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Spec::SheppLogan | Spec::Ellipses(_) | Spec::Gaussian2d(_) => Vec::new(),
            Spec::FashionMnist { .. } => vec![PathBuf::from(crate::data::FASHION_MNIST_DIR)],
            Spec::Invesalius { file, .. } => vec![file
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::data::invesalius::CRANIUM_INV3))],
            Spec::Nifti { paths, .. } | Spec::Dicom(paths) | Spec::Photos { paths, .. } => {
                paths.clone()
            }
            Spec::Path(p) => {
                let path = match p.rsplit_once('#') {
                    Some((file, _)) if !Path::new(p).exists() => file,
                    _ => p.as_str(),
                };
                vec![PathBuf::from(path)]
            }
            Spec::Join(parts) => parts.iter().flat_map(|p| p.paths()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_both_uses() {
        assert_eq!(
            Spec::parse("phantom:ellipses:1000..1004").unwrap(),
            Spec::Ellipses(Sel::Range {
                start: 1000,
                end: 1004,
                step: 1
            })
        );
        let s = Sel::parse("64", "x").unwrap();
        assert_eq!(s.indices(), vec![64]);
        assert_eq!(s.count_or_range().len(), 64);
        assert_eq!(
            Spec::parse("invesalius:z=66..80:4").unwrap(),
            Spec::Invesalius {
                file: None,
                z: Some(Sel::Range {
                    start: 66,
                    end: 80,
                    step: 4
                })
            }
        );
        assert_eq!(
            Spec::parse("invesalius:/a/b.inv3:z=3").unwrap(),
            Spec::Invesalius {
                file: Some("/a/b.inv3".into()),
                z: Some(Sel::One(3))
            }
        );
        assert_eq!(
            Spec::parse("fashion-mnist:test:0..16").unwrap(),
            Spec::FashionMnist {
                split: Some(Split::Test),
                sel: Some(Sel::Range {
                    start: 0,
                    end: 16,
                    step: 1
                })
            }
        );
        assert_eq!(
            Spec::parse("fashion-mnist").unwrap(),
            Spec::FashionMnist {
                split: None,
                sel: None
            }
        );
        match Spec::parse("phantom:shepp-logan+gaussian2d:8").unwrap() {
            Spec::Join(p) => assert_eq!(p, vec![Spec::SheppLogan, Spec::Gaussian2d(Some(8))]),
            other => panic!("{other:?}"),
        }
        for bad in [
            "phantom:ellipses:5..5",
            "phantom:ellipses:x",
            "phantom:ellipses:1..4:0",
            "invesalius:x=3",
        ] {
            assert!(Spec::parse(bad).is_err(), "{bad}");
        }
        assert!(Spec::parse("a++b")
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
