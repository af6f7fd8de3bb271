//! Device selection (`--device auto|cpu|cuda|cuda:N`) and libtorch runtime facts.
use crate::{Error, Result};
use std::str::FromStr;
use tch::Device;

/// What the user asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// First GPU if any, else CPU.
    #[default]
    Auto,
    Cpu,
    /// `cuda` (= `cuda:0`) or `cuda:N`.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            _ => {
                if let Some(n) = s.strip_prefix("cuda:") {
                    n.parse::<usize>().map(DeviceChoice::Cuda).map_err(|_| {
                        Error::Config(format!("`device`: '{s}' is not cuda:N with N a number"))
                    })
                } else {
                    Err(Error::Config(format!(
                        "`device`: '{s}' is not one of auto, cpu, cuda, cuda:N"
                    )))
                }
            }
        }
    }
}

impl DeviceChoice {
    /// Resolves to a `tch::Device`, failing clearly when a GPU is asked for and absent.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(if tch::Cuda::is_available() {
                Device::Cuda(0)
            } else {
                Device::Cpu
            }),
            DeviceChoice::Cuda(n) => {
                let count = if tch::Cuda::is_available() {
                    tch::Cuda::device_count() as usize
                } else {
                    0
                };
                if n >= count {
                    Err(Error::Config(format!(
                        "`device` cuda:{n} asked for, but {count} CUDA device(s) are available{}",
                        if count == 0 {
                            " (run `scoreinv doctor` to see whether libtorch_cuda was loaded)"
                        } else {
                            ""
                        }
                    )))
                } else {
                    Ok(Device::Cuda(n))
                }
            }
        }
    }
}

/// A short name for a device: `cpu`, `cuda:0`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
