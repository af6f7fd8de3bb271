//! `angles_range` (`--angles-range A:B`): a limited-angle acquisition keeps the angles of the
//! full grid that lie in `[A, B)` degrees. Angles are compared modulo the grid's period (180°
//! for parallel beam, where `θ` and `θ + 180°` measure the same lines, 360° for fan beam), so
//! a range may wrap: `-30:30` keeps `[330°, 360°) ∪ [0°, 30°)` of a fan-beam scan.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Angles within this many degrees of a range's start count as inside it (grid angles computed
/// as `k · step` land a rounding error away from an integer start).
const TOLERANCE_DEG: f64 = 1e-9;

/// A range of angles `[start, end)` in degrees (written `A:B`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AnglesRange {
    pub start_deg: f64,
    pub end_deg: f64,
}

impl AnglesRange {
    /// The range's width `B − A` in degrees.
    pub fn span_deg(&self) -> f64 {
        self.end_deg - self.start_deg
    }

    /// Whether `angle_deg` lies in `[A, B)` modulo `period_deg`.
    pub fn contains(&self, angle_deg: f64, period_deg: f64) -> bool {
        let d = (angle_deg - self.start_deg + TOLERANCE_DEG).rem_euclid(period_deg) - TOLERANCE_DEG;
        d < self.span_deg() - TOLERANCE_DEG
    }

    /// The indices of `angles_deg` in the range (increasing), for a grid of period
    /// `period_deg`; `what` names the grid in errors. Refuses a range wider than the period
    /// and one that keeps no angle.
    pub fn select(&self, angles_deg: &[f64], period_deg: f64, what: &str) -> Result<Vec<usize>> {
        if self.span_deg() > period_deg {
            return Err(Error::Config(format!(
                "`angles_range` {self} spans {}°, more than the {period_deg}° of {what}",
                self.span_deg()
            )));
        }
        let kept: Vec<usize> = angles_deg
            .iter()
            .enumerate()
            .filter(|(_, &a)| self.contains(a, period_deg))
            .map(|(i, _)| i)
            .collect();
        if kept.is_empty() {
            return Err(Error::Config(format!(
                "`angles_range` {self}: none of the {} angles of {what} lies in [{}°, {}°)",
                angles_deg.len(),
                self.start_deg,
                self.end_deg
            )));
        }
        Ok(kept)
    }
}

impl fmt::Display for AnglesRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.start_deg, self.end_deg)
    }
}

impl FromStr for AnglesRange {
    type Err = String;
    /// `A:B` in degrees, both finite, `A < B`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("expected A:B in degrees (e.g. 0:120), got '{s}'"))?;
        let num = |v: &str, which: &str| -> std::result::Result<f64, String> {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{which} '{}' of '{s}' is not a number", v.trim()))?;
            if !x.is_finite() {
                return Err(format!("{which} of '{s}' must be finite, got {x}"));
            }
            Ok(x)
        };
        let (start_deg, end_deg) = (num(a, "start A")?, num(b, "end B")?);
        if start_deg >= end_deg {
            return Err(format!(
                "'{s}' is empty: the start A must be below the end B (degrees, [A, B))"
            ));
        }
        Ok(AnglesRange { start_deg, end_deg })
    }
}

impl TryFrom<String> for AnglesRange {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<AnglesRange> for String {
    fn from(r: AnglesRange) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let r: AnglesRange = "0:120".parse().unwrap();
        assert_eq!((r.start_deg, r.end_deg), (0.0, 120.0));
        assert_eq!(r.to_string(), "0:120");
        let r: AnglesRange = " -30.5 : 30 ".parse().unwrap();
        assert_eq!((r.start_deg, r.end_deg), (-30.5, 30.0));
        for bad in ["120", "120:0", "5:5", "a:3", "0:inf", "nan:3", ""] {
            assert!(bad.parse::<AnglesRange>().is_err(), "{bad}");
        }
        let j = serde_json::to_value("10:20".parse::<AnglesRange>().unwrap()).unwrap();
        assert_eq!(j, serde_json::json!("10:20"));
        assert!(serde_json::from_value::<AnglesRange>(serde_json::json!("20:10")).is_err());
    }

    #[test]
    fn selects_half_open_and_wraps() {
        let grid: Vec<f64> = (0..12).map(|i| 30.0 * i as f64).collect(); // 0, 30, …, 330
        let r: AnglesRange = "0:120".parse().unwrap();
        assert_eq!(r.select(&grid, 360.0, "g").unwrap(), vec![0, 1, 2, 3]);
        let r: AnglesRange = "-60:30".parse().unwrap();
        assert_eq!(r.select(&grid, 360.0, "g").unwrap(), vec![0, 10, 11]);
        let r: AnglesRange = "1:29".parse().unwrap();
        assert!(r.select(&grid, 360.0, "g").is_err());
        let r: AnglesRange = "0:200".parse().unwrap();
        let e = r.select(&grid, 180.0, "g").unwrap_err().to_string();
        assert!(e.contains("`angles_range`") && e.contains("180"), "{e}");
        // Rounding of k·step does not move a grid angle out of the range.
        let fine: Vec<f64> = (0..7).map(|i| 0.1 * i as f64).collect();
        let r: AnglesRange = "0.3:0.6".parse().unwrap();
        assert_eq!(r.select(&fine, 180.0, "g").unwrap(), vec![3, 4, 5]);
    }
}
