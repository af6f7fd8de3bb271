//! The extension module `scoreinv._scoreinv` under the Python package `scoreinv`: operators,
//! models, tasks, reconstruction and metrics of the scoreinv library on torch tensors, passed
//! without copies through tch's Python interop (the extension links the libtorch of the
//! installed torch). The Python package (`python/scoreinv/`) gives it its public API.
use pyo3::prelude::*;
use pyo3_tch::PyTensor;

mod callback;
mod convert;
mod data;
mod errors;
mod figure;
mod metrics;
mod model;
mod operators;
mod task;

/// The tensor as Rust receives it, handed back: the same `at::Tensor` (same storage, same
/// data pointer) both ways, the check that nothing is copied at the boundary.
#[pyfunction]
fn roundtrip(t: PyTensor) -> PyTensor {
    PyTensor(t.0.shallow_clone())
}

/// Sets glibc's `malloc` up for tensor work as the command line does
/// (`scoreinv::runtime::tune_host_allocator`: freed tensors stay in the heap for reuse; CPU
/// sampling about 1.85× faster, for more resident memory), for the whole process. Returns what
/// was done: `tuned`, or why the allocator was left alone.
#[pyfunction]
fn tune_host_allocator() -> PyResult<String> {
    match scoreinv::runtime::tune_host_allocator().map_err(errors::lib_err)? {
        scoreinv::runtime::HostAllocator::Tuned => Ok("tuned".into()),
        scoreinv::runtime::HostAllocator::System(why) => Ok(why),
    }
}

#[pymodule]
fn _scoreinv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // libtorch's "sparse CSR is in beta" notice, printed when a CT operator is built: dropped
    // on the importing thread, as the command line drops it (other warnings are kept).
    scoreinv::runtime::quiet_known_torch_warnings();
    m.add_class::<operators::PyOperator>()?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<task::PyTask>()?;
    m.add_function(wrap_pyfunction!(operators::radon, m)?)?;
    m.add_function(wrap_pyfunction!(operators::fanbeam, m)?)?;
    m.add_function(wrap_pyfunction!(operators::mri_fourier, m)?)?;
    m.add_function(wrap_pyfunction!(operators::sense_mri, m)?)?;
    m.add_function(wrap_pyfunction!(operators::mri_mask, m)?)?;
    m.add_function(wrap_pyfunction!(operators::inpainting, m)?)?;
    m.add_function(wrap_pyfunction!(operators::grayscale, m)?)?;
    m.add_function(wrap_pyfunction!(operators::blur, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_model, m)?)?;
    m.add_function(wrap_pyfunction!(task::task, m)?)?;
    m.add_function(wrap_pyfunction!(task::task_names, m)?)?;
    m.add_function(wrap_pyfunction!(task::reconstruct_operator, m)?)?;
    m.add_function(wrap_pyfunction!(callback::callback_operator, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::psnr, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::ssim, m)?)?;
    m.add_function(wrap_pyfunction!(figure::save_figure, m)?)?;
    m.add_function(wrap_pyfunction!(data::ground_truth, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(tune_host_allocator, m)?)?;
    Ok(())
}
