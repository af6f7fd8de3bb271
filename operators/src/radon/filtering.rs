//! The filtering step of FBP on tensors, shared by the two tensor backends: each projection is
//! zero-padded as scikit-image does ([`FbpPadding`]), filtered with `fft_rfft`/`fft_irfft` by
//! a half-spectrum filter of [`crate::fbp`] and cut to the diagonal width `D`.
use tch::{Device, Kind, Tensor};

use super::Shared;
use crate::fbp::{half_spectrum_filter, FbpFilter, FbpPadding};
use crate::Result;

/// The half-spectrum filters `[P/2 + 1]` of every [`FbpFilter::ALL`] entry, on the device.
pub(super) struct FilterBank(Vec<Shared>);

impl FilterBank {
    /// The filters for `n` detector bins, of `kind` on `device`.
    pub fn new(n: usize, kind: Kind, device: Device) -> Result<Self> {
        let pad = FbpPadding::new(n);
        let filters = FbpFilter::ALL
            .iter()
            .map(|&f| {
                let h = half_spectrum_filter(pad.fft_len, f);
                Ok(Shared(
                    Tensor::f_from_slice(&h)?
                        .f_to_kind(kind)?
                        .f_to_device(device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FilterBank(filters))
    }

    /// The half spectrum of `filter`.
    pub fn get(&self, filter: FbpFilter) -> &Tensor {
        let i = FbpFilter::ALL
            .iter()
            .position(|&g| g == filter)
            .unwrap_or(0);
        &self.0[i]
    }

    /// `y` `[m, N_det, A]` → the filtered projections `[m, A, D]`: each zero-padded to the FFT
    /// length, filtered by `filter` and cut to the diagonal width `D`.
    pub fn filtered_sinogram(
        &self,
        y: &Tensor,
        filter: FbpFilter,
        n: i64,
        kind: Kind,
    ) -> Result<Tensor> {
        let pad = FbpPadding::new(n as usize);
        let (d, p, before) = (
            pad.diagonal as i64,
            pad.fft_len as i64,
            pad.pad_before as i64,
        );
        let padded = y
            .f_permute([0, 2, 1])? // [m, A, N_det]
            .f_constant_pad_nd([before, p - n - before])?;
        Ok(padded
            .f_fft_rfft(p, -1, "backward")?
            .f_mul(self.get(filter))?
            .f_fft_irfft(p, -1, "backward")?
            .f_narrow(2, 0, d)?
            .f_to_kind(kind)?)
    }
}
