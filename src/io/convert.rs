//! ndarray ⇄ `tch::Tensor`. Arrays of any memory layout (C order, Fortran order, strided or
//! transposed views) are copied in their *logical* order, so `tensor[i, j, ..] == array[[i, j, ..]]`
//! always; tensors are moved to the CPU and made contiguous before copying out. Complex arrays
//! travel as `[..., 2]` real tensors viewed as complex (`torch.view_as_complex`).
use crate::{Error, Result};
use ndarray::{Array3, ArrayBase, ArrayD, Data, Dimension, IxDyn};
use num_complex::Complex;
use tch::kind::Element;
use tch::{Device, Tensor};

fn shape_i64(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// A CPU tensor with the array's shape and element type (f32 → Float, f64 → Double, ...).
pub fn array_to_tensor<T, S, D>(a: &ArrayBase<S, D>) -> Tensor
where
    T: Element + Clone,
    S: Data<Elem = T>,
    D: Dimension,
{
    let std = a.as_standard_layout();
    let slice = std.as_slice().expect("standard layout is contiguous");
    Tensor::from_slice(slice).reshape(shape_i64(a.shape()))
}

/// A complex64 CPU tensor from a `Complex<f32>` array.
pub fn complex_array_to_tensor<S, D>(a: &ArrayBase<S, D>) -> Tensor
where
    S: Data<Elem = Complex<f32>>,
    D: Dimension,
{
    let flat: Vec<f32> = a.iter().flat_map(|z| [z.re, z.im]).collect();
    let mut shape = shape_i64(a.shape());
    shape.push(2);
    Tensor::from_slice(&flat).reshape(shape).view_as_complex()
}

/// Copies a tensor (any device, any real kind) into an array of `T`, converting the kind.
pub fn tensor_to_array<T: Element + Clone + Default>(t: &Tensor) -> Result<ArrayD<T>> {
    if t.is_complex() {
        return Err(Error::Invalid(format!(
            "tensor of kind {:?} is complex; use tensor_to_complex_array",
            t.kind()
        )));
    }
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let c = t
        .f_to_device(Device::Cpu)?
        .f_to_kind(T::KIND)?
        .f_contiguous()?;
    let n = c.numel();
    let mut v = vec![T::default(); n];
    c.f_copy_data(&mut v, n)?;
    ArrayD::from_shape_vec(IxDyn(&shape), v)
        .map_err(|e| Error::Invalid(format!("tensor to array: {e}")))
}

/// A `[C, H, W]` f32 array from a `[C, H, W]` or `[1, C, H, W]` tensor.
pub fn tensor_to_array3(t: &Tensor, what: &str) -> Result<Array3<f32>> {
    super::ensure_3d(tensor_to_array::<f32>(t)?, what)
}

/// Copies a complex (or real) tensor into a `Complex<f32>` array.
pub fn tensor_to_complex_array(t: &Tensor) -> Result<ArrayD<Complex<f32>>> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let cpu = t.f_to_device(Device::Cpu)?;
    let pairs = if cpu.is_complex() {
        cpu.f_to_kind(tch::Kind::ComplexFloat)?
            .f_view_as_real()?
            .f_contiguous()?
    } else {
        let re = cpu.f_to_kind(tch::Kind::Float)?;
        Tensor::f_stack(&[&re, &re.zeros_like()], -1)?.f_contiguous()?
    };
    let n = pairs.numel();
    let mut v = vec![0f32; n];
    pairs.f_copy_data(&mut v, n)?;
    let z: Vec<Complex<f32>> = v
        .chunks_exact(2)
        .map(|p| Complex::new(p[0], p[1]))
        .collect();
    ArrayD::from_shape_vec(IxDyn(&shape), z)
        .map_err(|e| Error::Invalid(format!("tensor to complex array: {e}")))
}
