//! The whole-image score of a patch model (PaDIS) against exact scores: a pixel-independent
//! Gaussian prior whose mean depends on the position in the image has the exact score
//! `−(x − μ(r, c)) / (s² + t²)`; a patch network that knows only its patch and the position
//! channels must give it at every offset and for image sizes that are not multiples of `P`.
use scoreinv::models::config::ScoreSdeConfig;
use scoreinv::models::ncsnpp::Ncsnpp;
use scoreinv::models::patch::{Layout, PatchScore};
use scoreinv::models::ScoreModel;
use tch::{Device, Kind, Tensor};

const S2: f64 = 0.04;

/// `μ(r, c)` for position channels `r, c` in `[−1, 1]`.
fn mean(r: &Tensor, c: &Tensor) -> Tensor {
    r * 0.2 + c * 0.1 + 0.3
}

/// The patch network of the Gaussian prior: reads its mean off the position channels.
fn gaussian_patch_net(channels: i64) -> impl Fn(&Tensor, &Tensor) -> Tensor + Send + Sync {
    move |x: &Tensor, t: &Tensor| {
        let img = x.narrow(1, 0, channels);
        let r = x.narrow(1, channels, 1);
        let c = x.narrow(1, channels + 1, 1);
        let var = t.square().reshape([-1, 1, 1, 1]) + S2;
        -(img - mean(&r, &c)) / var
    }
}

/// The exact whole-image score.
fn exact(x: &Tensor, t: &Tensor) -> Tensor {
    let s = x.size();
    let (h, w) = (s[2], s[3]);
    let axis = |n: i64| {
        if n > 1 {
            Tensor::linspace(-1.0, 1.0, n, (Kind::Double, Device::Cpu))
        } else {
            Tensor::zeros([1], (Kind::Double, Device::Cpu))
        }
    };
    let r = axis(h).reshape([1, 1, h, 1]);
    let c = axis(w).reshape([1, 1, 1, w]);
    let var = t.square().reshape([-1, 1, 1, 1]) + S2;
    -(x - mean(&r, &c)) / var
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn stitched_score_is_exact_for_every_offset_and_size() {
    tch::manual_seed(0);
    let p = 4;
    for (c, h, w) in [(1, 4, 4), (1, 13, 9), (2, 5, 21), (1, 1, 7)] {
        let x = Tensor::randn([3, c, h, w], (Kind::Double, Device::Cpu));
        let t = Tensor::from_slice(&[0.01, 0.3, 1.0]);
        let want = exact(&x, &t);
        for oy in 0..p {
            for ox in 0..p {
                let mut m = PatchScore::new(gaussian_patch_net(c), p, c, 5).unwrap();
                m.fixed_offset = Some((oy, ox));
                let got = m.score(&x, &t);
                let err = max_abs(&got, &want);
                assert!(err < 1e-12, "{h}×{w}, offset ({oy}, {ox}): {err}");
            }
        }
    }
}

#[test]
fn position_channels_matter_control() {
    // A network that ignores the position channels (a constant mean) misses the exact score.
    let x = Tensor::randn([1, 1, 9, 9], (Kind::Double, Device::Cpu));
    let t = Tensor::from_slice(&[0.1]);
    let blind = |x: &Tensor, t: &Tensor| {
        let var = t.square().reshape([-1, 1, 1, 1]) + S2;
        -(x.narrow(1, 0, 1) - 0.3) / var
    };
    let m = PatchScore::new(blind, 4, 1, 64).unwrap();
    assert!(max_abs(&m.score_at(&x, &t, (0, 0)).unwrap(), &exact(&x, &t)) > 1e-2);
}

#[test]
fn a_patch_sized_image_at_zero_offset_is_the_network_on_patch_and_positions() {
    tch::manual_seed(1);
    let (p, c) = (6, 2);
    let weight = Tensor::randn([c, c + 2, 3, 3], (Kind::Double, Device::Cpu));
    let conv = |w: &Tensor| {
        // libtorch tensors are not Sync; a patch network is shared between threads.
        let w = std::sync::Mutex::new(w.shallow_clone());
        move |x: &Tensor, t: &Tensor| {
            let w = w.lock().unwrap();
            x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1) * t.reshape([-1, 1, 1, 1])
        }
    };
    let net = conv(&weight);
    let x = Tensor::randn([2, c, p, p], (Kind::Double, Device::Cpu));
    let t = Tensor::from_slice(&[0.5, 2.0]);
    let pos = Layout::new(p, p, p, (0, 0))
        .unwrap()
        .positions(Kind::Double, Device::Cpu)
        .narrow(1, 0, p)
        .narrow(2, 0, p)
        .unsqueeze(0)
        .expand([2, 2, p, p], false);
    let direct = net(
        &Tensor::cat(&[x.shallow_clone(), pos.shallow_clone()], 1),
        &t,
    );
    let m = PatchScore::new(conv(&weight), p, c, 64).unwrap();
    let got = m.score_at(&x, &t, (0, 0)).unwrap();
    assert!(max_abs(&got, &direct) < 1e-12);
    // Control: without the position channels the network gives something else.
    let blind = net(&Tensor::cat(&[x.shallow_clone(), pos.zeros_like()], 1), &t);
    assert!(max_abs(&got, &blind) > 1e-3);
}

#[test]
fn offsets_move_with_the_generator_and_batching_does_not_matter() {
    let p = 4;
    // A network whose output shows where its patch boundaries are: the row within the patch.
    let seams = |x: &Tensor, _t: &Tensor| {
        let s = x.size();
        Tensor::arange(s[2], (Kind::Double, Device::Cpu))
            .reshape([1, 1, s[2], 1])
            .expand([s[0], 1, s[2], s[3]], true)
            .contiguous()
    };
    let m = PatchScore::new(seams, p, 1, 3).unwrap();
    let x = Tensor::zeros([1, 1, 10, 10], (Kind::Double, Device::Cpu));
    let t = Tensor::from_slice(&[0.1]);
    let mut seen = Vec::new();
    for seed in 0..8 {
        tch::manual_seed(seed);
        seen.push(m.score(&x, &t).double_value(&[0, 0, 0, 0]));
    }
    seen.sort_by(f64::total_cmp);
    seen.dedup();
    assert!(seen.len() > 1, "the offset changes between calls: {seen:?}");
    tch::manual_seed(3);
    let a = m.score(&x, &t);
    tch::manual_seed(3);
    let b = m.score(&x, &t);
    assert_eq!(max_abs(&a, &b), 0.0, "reproducible under manual_seed");
    // One patch per network call or all at once: the same.
    let mut one = PatchScore::new(gaussian_patch_net(1), p, 1, 1).unwrap();
    let mut all = PatchScore::new(gaussian_patch_net(1), p, 1, 1000).unwrap();
    one.fixed_offset = Some((1, 2));
    all.fixed_offset = Some((1, 2));
    let y = Tensor::randn([2, 1, 11, 6], (Kind::Double, Device::Cpu));
    let tt = Tensor::from_slice(&[0.2, 0.7]);
    assert_eq!(max_abs(&one.score(&y, &tt), &all.score(&y, &tt)), 0.0);
}

#[test]
fn wrong_channels_are_an_error() {
    let m = PatchScore::new(gaussian_patch_net(1), 4, 1, 8).unwrap();
    let x = Tensor::zeros([1, 3, 8, 8], (Kind::Double, Device::Cpu));
    let e = m
        .score_at(&x, &Tensor::from_slice(&[0.1]), (0, 0))
        .unwrap_err();
    assert!(e.to_string().contains("[B, 1, H, W]"), "{e}");
    assert!(PatchScore::new(gaussian_patch_net(1), 0, 1, 8).is_err());
}

#[test]
fn ncsnpp_with_position_channels_scores_images_of_any_size_patch_by_patch() {
    tch::manual_seed(2);
    let cfg = ScoreSdeConfig::from_json_value(&serde_json::json!({
        "model": {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": []},
        "data": {"image_size": 8, "num_channels": 1, "extra_input_channels": 2}
    }))
    .unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = std::sync::Arc::new(std::sync::Mutex::new(
        Ncsnpp::new(&vs.root(), &cfg).unwrap(),
    ));
    let shared = net.clone();
    let patch_net = move |x: &Tensor, c: &Tensor| {
        shared
            .lock()
            .unwrap()
            .forward(x, c, false)
            .expect("patch shape")
    };
    let m = PatchScore::new(patch_net, 8, 1, 4).unwrap();
    // 13×21 is not a multiple of the patch; at offset (5, 2) 3·4 = 12 patches touch it.
    let x = Tensor::rand([2, 1, 13, 21], (Kind::Float, Device::Cpu));
    let sigma = Tensor::from_slice(&[0.1f32, 1.0]);
    let s = m.score_at(&x, &sigma, (5, 2)).unwrap();
    assert_eq!(s.size(), [2, 1, 13, 21]);
    assert_eq!(s.isfinite().all().int64_value(&[]), 1);
    // Canvas cell (1, 1) covers image rows 3..11 and columns 6..14: the stitched score there
    // is the network on that patch and its positions.
    let lay = Layout::new(13, 21, 8, (5, 2)).unwrap();
    let pos = lay
        .positions(Kind::Float, Device::Cpu)
        .narrow(1, 8, 8)
        .narrow(2, 8, 8);
    let patch = Tensor::cat(
        &[
            x.narrow(2, 3, 8).narrow(3, 6, 8),
            pos.unsqueeze(0).expand([2, 2, 8, 8], false),
        ],
        1,
    );
    let direct = net.lock().unwrap().forward(&patch, &sigma, false).unwrap();
    let err = max_abs(&direct, &s.narrow(2, 3, 8).narrow(3, 6, 8));
    assert!(err < 1e-5, "{err}");
    // Control: the neighbouring window of the image is not that patch.
    let off = max_abs(&direct, &s.narrow(2, 4, 8).narrow(3, 6, 8));
    assert!(off > 1e-4, "{off}");
}
