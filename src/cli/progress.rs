//! Progress of long work: an indicatif bar with its ETA on a terminal; when stderr is not a
//! terminal (a log file, a notebook cell, CI), where indicatif draws nothing, one plain line
//! every [`PLAIN_EVERY`] and at the end of each stage instead.
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a plain progress line is printed without a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A progress bar (see the module doc). `unit` names what is counted (`steps`, `cases`).
pub struct Bar {
    bar: ProgressBar,
    plain: bool,
    label: String,
    unit: &'static str,
    message: String,
    /// When the current stage started (its ETA counts from there), and the position then.
    stage: (Instant, u64),
    last_line: Option<Instant>,
}

impl Bar {
    /// A bar of `len` units labelled `label`.
    pub fn new(label: impl Into<String>, len: u64, unit: &'static str) -> Self {
        let plain = !std::io::stderr().is_terminal();
        let bar = if plain {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(len)
        };
        bar.set_length(len);
        let label = label.into();
        let template = format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}  {{elapsed}}, ETA {{eta}}"
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.clone());
        Self {
            bar,
            plain,
            label,
            unit,
            message: String::new(),
            stage: (Instant::now(), 0),
            last_line: None,
        }
    }

    /// Whether lines are printed instead of a bar.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Starts a new stage: `len` units from `pos`, with `message` (e.g. the method running).
    pub fn stage(&mut self, message: impl Into<String>, pos: u64, len: u64) {
        self.message = message.into();
        self.bar.set_length(len);
        self.bar.set_position(pos);
        self.bar.reset_eta();
        self.bar.set_message(self.message.clone());
        self.stage = (Instant::now(), pos);
        self.last_line = None;
    }

    pub fn set_length(&mut self, len: u64) {
        self.bar.set_length(len);
    }

    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = message.into();
        self.bar.set_message(self.message.clone());
    }

    /// Moves to `pos`; without a terminal prints a line when [`PLAIN_EVERY`] has passed since
    /// the last one, and at the end of the stage.
    pub fn set_position(&mut self, pos: u64) {
        self.bar.set_position(pos);
        if !self.plain {
            return;
        }
        let len = self.bar.length().unwrap_or(0);
        let due = self
            .last_line
            .map_or(self.stage.0.elapsed() >= PLAIN_EVERY, |t| {
                t.elapsed() >= PLAIN_EVERY
            });
        if due || (pos >= len && len > 0) {
            eprintln!("{}", self.line(pos, len));
            self.last_line = Some(Instant::now());
        }
    }

    /// A line printed above the bar (or as is without a terminal).
    pub fn println(&self, line: impl AsRef<str>) {
        if self.plain {
            eprintln!("{}", line.as_ref());
        } else {
            self.bar.println(line.as_ref());
        }
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }

    /// `label: 200/1000 steps (20%) score, 0:41 elapsed, ETA 2:44`.
    fn line(&self, pos: u64, len: u64) -> String {
        let (t0, p0) = self.stage;
        let elapsed = t0.elapsed();
        let pct = if len > 0 {
            100.0 * pos as f64 / len as f64
        } else {
            0.0
        };
        let eta = if pos > p0 && len > pos {
            let per = elapsed.as_secs_f64() / (pos - p0) as f64;
            format!(", ETA {}", clock(per * (len - pos) as f64))
        } else {
            String::new()
        };
        let msg = if self.message.is_empty() {
            String::new()
        } else {
            format!(" {}", self.message)
        };
        format!(
            "{}: {pos}/{len} {} ({pct:.0}%){msg}, {} elapsed{eta}",
            self.label,
            self.unit,
            clock(elapsed.as_secs_f64())
        )
    }
}

/// `m:ss` or `h:mm:ss`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(61.4), "1:01");
        assert_eq!(clock(3725.0), "1:02:05");
    }

    #[test]
    fn plain_line_has_counts_message_and_eta() {
        let mut b = Bar::new("reconstruct ct", 10, "steps");
        b.stage("case 1/1 x · score", 0, 1000);
        b.stage = (Instant::now() - Duration::from_secs(20), 0);
        let line = b.line(200, 1000);
        assert!(
            line.starts_with("reconstruct ct: 200/1000 steps (20%)"),
            "{line}"
        );
        assert!(line.contains("score"), "{line}");
        assert!(line.contains("ETA 1:20"), "{line}");
        // No ETA before the first unit of the stage is done.
        assert!(!b.line(0, 1000).contains("ETA"));
    }
}
