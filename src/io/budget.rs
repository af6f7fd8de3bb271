//! The memory budget that sizes declared in input files (and flags such as `--size`) are
//! checked against before anything is allocated: the machine's available memory
//! (`MemAvailable` of /proc/meminfo, 16 GiB where it cannot be read), or the environment
//! variable `SCOREINV_MEMORY_BUDGET` (bytes, or with a K, M or G suffix).
use crate::{Error, Result};

/// The budget in bytes.
pub fn budget_bytes() -> u128 {
    if let Ok(v) = std::env::var("SCOREINV_MEMORY_BUDGET") {
        if let Some(b) = parse_size(&v) {
            return b;
        }
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u128>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(16 << 30)
}

fn parse_size(v: &str) -> Option<u128> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u128 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.trim().parse::<u128>().ok().map(|n| n * mult)
}

/// Refuses an allocation of `bytes` for `what` beyond the budget.
pub fn check_alloc(bytes: u128, what: &str) -> Result<()> {
    let budget = budget_bytes();
    if bytes > budget {
        return Err(Error::Invalid(format!(
            "{what} needs {:.1} GiB, more than the memory budget of {:.1} GiB (the available \
             memory, or SCOREINV_MEMORY_BUDGET)",
            bytes as f64 / (1u64 << 30) as f64,
            budget as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}
