//! Devices, dtypes and small arrays passed from Python as strings and tensors.
use pyo3::exceptions::PyValueError;
use pyo3::PyResult;
use tch::{Device, Kind, Tensor};

/// `"cpu"`, `"cuda"`, `"cuda:N"`, `"mps"` (as `str(torch.device)` writes them).
pub fn device(name: &str) -> PyResult<Device> {
    let n = name.trim();
    match n {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        "mps" => Ok(Device::Mps),
        _ => match n.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(Device::Cuda(i)),
            _ => Err(PyValueError::new_err(format!(
                "device '{name}': expected cpu, cuda, cuda:N or mps"
            ))),
        },
    }
}

/// `"float32"` or `"float64"`: the real precision an operator is built for.
pub fn real_kind(name: &str) -> PyResult<Kind> {
    match name {
        "float32" => Ok(Kind::Float),
        "float64" => Ok(Kind::Double),
        other => Err(PyValueError::new_err(format!(
            "dtype {other}: operators are built for float32 or float64"
        ))),
    }
}

/// The `[H, W]` values of a 2-D tensor (any real dtype, any device) as f64, row-major.
pub fn matrix_f64(t: &Tensor, what: &str) -> PyResult<(usize, usize, Vec<f64>)> {
    let s = t.size();
    if s.len() != 2 || t.is_complex() {
        return Err(PyValueError::new_err(format!(
            "{what}: expected a real 2-D array [H, W], got shape {s:?} ({:?})",
            t.kind()
        )));
    }
    let flat = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .contiguous()
        .view([-1]);
    let v =
        Vec::<f64>::try_from(&flat).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{what} contains NaN or infinite values"
        )));
    }
    Ok((s[0] as usize, s[1] as usize, v))
}
