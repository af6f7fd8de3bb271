//! Counter-based random streams: every random draw of training is a pure function of
//! `(seed, step, purpose)`, so a checkpoint that records `seed` and `step` restores the random
//! state exactly, on any device and with any thread count.
//!
//! A stream is ChaCha8 keyed by `(seed, step, purpose)`. Normal tensors are generated on the CPU
//! in chunks of 2¹⁶ values, chunk `k` drawn from ChaCha stream `k` of the same key (in
//! parallel with rayon, identical for any thread count), then moved to the device. libtorch's own
//! generator is used only for network-internal randomness (dropout); the trainer reseeds it every
//! step from the same key.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// What a stream is used for (part of the key, so streams never overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Order of the training data in an epoch (the "step" slot holds the epoch).
    DataOrder = 1,
    /// Random flips of a batch.
    Augment = 2,
    /// Times, labels, noise and projections of the loss.
    Loss = 3,
    /// Held-out evaluation noise.
    Eval = 4,
    /// libtorch's generator (dropout).
    Torch = 5,
    /// Held-out split of a dataset.
    Split = 6,
    /// Synthetic data.
    Synthetic = 7,
    /// Prior noise of the periodic sample grids (libtorch's generator is seeded from it).
    Sample = 8,
}

const CHUNK: usize = 1 << 16;

/// A keyed random stream.
#[derive(Debug, Clone)]
pub struct Stream {
    key: [u8; 32],
    rng: ChaCha8Rng,
    next_stream: u64,
}

impl Stream {
    /// The stream for `(seed, step, purpose)`.
    pub fn new(seed: u64, step: u64, purpose: Purpose) -> Self {
        let mut key = [0u8; 32];
        key[0..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&step.to_le_bytes());
        key[16..24].copy_from_slice(&(purpose as u64).to_le_bytes());
        key[24..32].copy_from_slice(b"scoreinv");
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(0);
        Self {
            key,
            rng,
            next_stream: 1,
        }
    }

    /// A 64-bit value derived from the key (to seed libtorch).
    pub fn seed_u64(&mut self) -> u64 {
        self.rng.gen()
    }

    /// `n` uniform values in `[0, 1)`.
    pub fn uniform(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.rng.gen::<f64>()).collect()
    }

    /// `n` integers uniform in `[0, hi)`.
    pub fn below(&mut self, n: usize, hi: u64) -> Vec<i64> {
        (0..n).map(|_| self.rng.gen_range(0..hi) as i64).collect()
    }

    /// `n` fair coin flips.
    pub fn coins(&mut self, n: usize) -> Vec<bool> {
        (0..n).map(|_| self.rng.gen::<bool>()).collect()
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = self.rng.gen_range(0..=i);
            p.swap(i, j);
        }
        p
    }

    /// Standard normal f32 values, `numel` of them, from fresh ChaCha streams of this key.
    pub fn normal_vec(&mut self, numel: usize) -> Vec<f32> {
        let first = self.next_stream;
        let n_chunks = numel.div_ceil(CHUNK);
        self.next_stream += n_chunks as u64;
        let key = self.key;
        let mut out = vec![0f32; numel];
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, chunk)| {
                let mut r = ChaCha8Rng::from_seed(key);
                r.set_stream(first + k as u64);
                for v in chunk.iter_mut() {
                    *v = r.sample(StandardNormal);
                }
            });
        out
    }

    /// A standard normal tensor of `shape` on `device` with `kind`.
    pub fn normal(&mut self, shape: &[i64], kind: Kind, device: Device) -> Tensor {
        let numel: i64 = shape.iter().product();
        let v = self.normal_vec(numel as usize);
        Tensor::from_slice(&v)
            .reshape(shape)
            .to_kind(kind)
            .to_device(device)
    }

    /// A Rademacher (±1) tensor of `shape`.
    pub fn rademacher(&mut self, shape: &[i64], kind: Kind, device: Device) -> Tensor {
        let numel: i64 = shape.iter().product();
        let v: Vec<f32> = self
            .coins(numel as usize)
            .into_iter()
            .map(|c| if c { 1.0 } else { -1.0 })
            .collect();
        Tensor::from_slice(&v)
            .reshape(shape)
            .to_kind(kind)
            .to_device(device)
    }
}
