"""NCSN++ / DDPM++ score network in plain PyTorch eager mode, for `scoreinv bench`.

An independent re-implementation of the network of Song et al. 2021 ("Score-Based Generative
Modeling through Stochastic Differential Equations", ICLR, Appendix H), written from the
architecture description and from scoreinv's `src/models/ncsnpp.rs` so that its `state_dict`
names are exactly scoreinv's (`all_modules.<i>.<Sub>.<param>`): weights written by the Rust side
as safetensors load here with `strict=True`.

It follows scoreinv's documented deviations (nearest 2x non-FIR upsampling, FIR `Upsample`
with conv via a flipped transposed convolution, attention at levels `image_size / 2^i`).
The config is the same JSON as scoreinv's `ScoreSdeConfig` (`{"model": {...}, "data": {...}}`)
with score_sde_pytorch defaults for absent fields.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL_DEFAULTS = dict(
    name="ncsnpp", nf=128, ch_mult=[1, 2, 2, 2], num_res_blocks=4, attn_resolutions=[16],
    dropout=0.1, resamp_with_conv=True, conditional=True, fir=True, fir_kernel=[1, 3, 3, 1],
    skip_rescale=True, resblock_type="biggan", progressive="none",
    progressive_input="residual", progressive_combine="sum", attention_type="ddpm",
    init_scale=0.0, fourier_scale=16.0, embedding_type="fourier", scale_by_sigma=True,
    conv_size=3, nonlinearity="swish", sigma_min=0.01, sigma_max=50.0, num_scales=1000,
)
DATA_DEFAULTS = dict(image_size=32, num_channels=3, centered=False)


def resolve_config(cfg):
    """Fills score_sde_pytorch defaults into a `{"model", "data"}` dict (lower-cased choices)."""
    m = dict(MODEL_DEFAULTS)
    m.update(cfg.get("model", {}))
    d = dict(DATA_DEFAULTS)
    d.update(cfg.get("data", {}))
    for k in ("resblock_type", "progressive", "progressive_input", "progressive_combine",
              "embedding_type", "nonlinearity"):
        m[k] = m[k].lower()
    return m, d


def act_fn(name):
    return {
        "swish": F.silu,
        "elu": F.elu,
        "relu": F.relu,
        "lrelu": lambda x: F.leaky_relu(x, 0.2),
    }[name]


# ---------------------------------------------------------------- FIR resampling (upfirdn2d)
def fir_kernel_2d(k1, gain):
    k = torch.tensor(k1, dtype=torch.float64)
    k = torch.outer(k, k)
    return k / k.sum() * gain


def upfirdn2d(x, k, up, down, pad0, pad1):
    """Zero-insert upsampling by `up`, pad (pad0 before, pad1 after, both axes), true
    convolution with the 2-D kernel `k`, keep every `down`-th sample."""
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    if up > 1:
        z = y.new_zeros(n * c, 1, h * up, w * up)
        z[:, :, ::up, ::up] = y
        y = z
    if pad0 or pad1:
        y = F.pad(y, (pad0, pad1, pad0, pad1))
    kk = torch.flip(k, [0, 1]).to(dtype=x.dtype, device=x.device)[None, None]
    y = F.conv2d(y, kk, stride=down)
    return y.reshape(n, c, y.shape[2], y.shape[3])


def fir_upsample(x, k1, factor=2):
    k = fir_kernel_2d(k1, factor * factor)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, factor, 1, (p + 1) // 2 + factor - 1, p // 2)


def fir_downsample(x, k1, factor=2):
    k = fir_kernel_2d(k1, 1.0)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, 1, factor, (p + 1) // 2, p // 2)


def fir_upsample_conv(x, w, k1, factor=2):
    k = fir_kernel_2d(k1, factor * factor)
    p = (k.shape[0] - factor) - (w.shape[3] - 1)
    wt = torch.flip(w, [2, 3]).transpose(0, 1)
    y = F.conv_transpose2d(x, wt, stride=factor)
    return upfirdn2d(y, k, 1, 1, (p + 1) // 2 + factor - 1, p // 2 + 1)


def fir_conv_downsample(x, w, k1, factor=2):
    k = fir_kernel_2d(k1, 1.0)
    p = (k.shape[0] - factor) + (w.shape[3] - 1)
    y = upfirdn2d(x, k, 1, 1, (p + 1) // 2, p // 2)
    return F.conv2d(y, w, stride=factor)


def naive_upsample(x, factor=2):
    return x.repeat_interleave(factor, 2).repeat_interleave(factor, 3)


def naive_downsample(x, factor=2):
    return F.avg_pool2d(x, factor)


# ---------------------------------------------------------------- layers
def group_norm(c):
    return nn.GroupNorm(min(c // 4, 32), c, eps=1e-6)


def conv(cin, cout, k=3, stride=1, padding=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding)


class Nin(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(cin, cout))
        self.b = nn.Parameter(torch.zeros(cout))

    def flat(self, x):  # x: [B, C, L]
        return torch.matmul(self.W.t(), x) + self.b[:, None]

    def forward(self, x):
        b, _, h, w = x.shape
        return self.flat(x.reshape(b, -1, h * w)).reshape(b, -1, h, w)


def residual(x, h, skip_rescale):
    return (x + h) / math.sqrt(2.0) if skip_rescale else x + h


class GaussianFourierProjection(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(size), requires_grad=False)

    def forward(self, x):
        proj = x[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([torch.sin(proj), torch.cos(proj)], -1)


def timestep_embedding(t, dim):
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=t.dtype, device=t.device) * -emb)
    args = t[:, None] * freqs[None, :]
    out = torch.cat([torch.sin(args), torch.cos(args)], 1)
    return F.pad(out, (0, 1)) if dim % 2 == 1 else out


class Combine(nn.Module):
    def __init__(self, dim1, dim2, cat):
        super().__init__()
        self.Conv_0 = conv(dim1, dim2, 1, padding=0)
        self.cat = cat

    def forward(self, x, y):
        h = self.Conv_0(x)
        return torch.cat([h, y], 1) if self.cat else h + y


class AttnBlockpp(nn.Module):
    def __init__(self, c, skip_rescale):
        super().__init__()
        self.GroupNorm_0 = group_norm(c)
        self.NIN_0, self.NIN_1, self.NIN_2, self.NIN_3 = (Nin(c, c) for _ in range(4))
        self.skip_rescale = skip_rescale

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.GroupNorm_0(x).reshape(b, c, hh * ww)
        q, k, v = self.NIN_0.flat(h), self.NIN_1.flat(h), self.NIN_2.flat(h)
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c ** -0.5, -1)
        h = torch.bmm(v, w.transpose(1, 2))
        h = self.NIN_3.flat(h).reshape(b, c, hh, ww)
        return residual(x, h, self.skip_rescale)


class Upsample(nn.Module):
    def __init__(self, cin, cout, with_conv, fir, k1):
        super().__init__()
        self.fir, self.k1, self.with_conv = fir, k1, with_conv
        if with_conv and fir:
            self.Conv2d_0 = conv(cin, cout)
        elif with_conv:
            self.Conv_0 = conv(cin, cout)

    def forward(self, x):
        if not self.fir:
            h = naive_upsample(x)
            return self.Conv_0(h) if self.with_conv else h
        if not self.with_conv:
            return fir_upsample(x, self.k1)
        c = self.Conv2d_0
        return fir_upsample_conv(x, c.weight, self.k1) + c.bias[None, :, None, None]


class Downsample(nn.Module):
    def __init__(self, cin, cout, with_conv, fir, k1):
        super().__init__()
        self.fir, self.k1, self.with_conv = fir, k1, with_conv
        if with_conv and fir:
            self.Conv2d_0 = conv(cin, cout)
        elif with_conv:
            self.Conv_0 = conv(cin, cout, 3, stride=2, padding=0)

    def forward(self, x):
        if not self.fir:
            if self.with_conv:
                return self.Conv_0(F.pad(x, (0, 1, 0, 1)))
            return naive_downsample(x)
        if not self.with_conv:
            return fir_downsample(x, self.k1)
        c = self.Conv2d_0
        return fir_conv_downsample(x, c.weight, self.k1) + c.bias[None, :, None, None]


class ResnetBlockBigGANpp(nn.Module):
    def __init__(self, act, cin, cout, temb_dim, up, down, dropout, fir, k1, skip_rescale):
        super().__init__()
        self.GroupNorm_0 = group_norm(cin)
        self.Conv_0 = conv(cin, cout)
        self.Dense_0 = nn.Linear(temb_dim, cout)
        self.GroupNorm_1 = group_norm(cout)
        self.Conv_1 = conv(cout, cout)
        if cin != cout or up or down:
            self.Conv_2 = conv(cin, cout, 1, padding=0)
        self.has_skip_conv = cin != cout or up or down
        self.act, self.up, self.down, self.dropout = act, up, down, dropout
        self.fir, self.k1, self.skip_rescale = fir, k1, skip_rescale

    def forward(self, x, temb):
        h = self.act(self.GroupNorm_0(x))
        if self.up:
            f = (lambda t: fir_upsample(t, self.k1)) if self.fir else naive_upsample
            h, x = f(h), f(x)
        elif self.down:
            f = (lambda t: fir_downsample(t, self.k1)) if self.fir else naive_downsample
            h, x = f(h), f(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.act(self.GroupNorm_1(h))
        h = F.dropout(h, self.dropout, self.training)
        h = self.Conv_1(h)
        if self.has_skip_conv:
            x = self.Conv_2(x)
        return residual(x, h, self.skip_rescale)


class ResnetBlockDDPMpp(nn.Module):
    def __init__(self, act, cin, cout, temb_dim, dropout, skip_rescale):
        super().__init__()
        self.GroupNorm_0 = group_norm(cin)
        self.Conv_0 = conv(cin, cout)
        self.Dense_0 = nn.Linear(temb_dim, cout)
        self.GroupNorm_1 = group_norm(cout)
        self.Conv_1 = conv(cout, cout)
        if cin != cout:
            self.NIN_0 = Nin(cin, cout)
        self.has_nin = cin != cout
        self.act, self.dropout, self.skip_rescale = act, dropout, skip_rescale

    def forward(self, x, temb):
        h = self.Conv_0(self.act(self.GroupNorm_0(x)))
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.act(self.GroupNorm_1(h))
        h = F.dropout(h, self.dropout, self.training)
        h = self.Conv_1(h)
        x = self.NIN_0(x) if self.has_nin else x
        return residual(x, h, self.skip_rescale)


# ---------------------------------------------------------------- network
class NCSNpp(nn.Module):
    """The U-Net; `forward(x, cond)` with `cond = σ` (fourier) or the label (positional)."""

    def __init__(self, cfg):
        super().__init__()
        m, d = resolve_config(cfg)
        self.m, self.d = m, d
        self.act = act = act_fn(m["nonlinearity"])
        nf, ch_mult, nrb = m["nf"], m["ch_mult"], m["num_res_blocks"]
        levels = len(ch_mult)
        all_res = [d["image_size"] >> i for i in range(levels)]
        fir, k1 = m["fir"], m["fir_kernel"]
        skip = m["skip_rescale"]
        channels = d["num_channels"]
        self.register_buffer("sigmas", torch.exp(torch.linspace(
            math.log(m["sigma_max"]), math.log(m["sigma_min"]), m["num_scales"],
            dtype=torch.float64)), persistent=False)
        mods = []
        if m["embedding_type"] == "fourier":
            mods.append(GaussianFourierProjection(nf))
            embed_dim = 2 * nf
        else:
            embed_dim = nf
        if m["conditional"]:
            mods.append(nn.Linear(embed_dim, 4 * nf))
            mods.append(nn.Linear(4 * nf, 4 * nf))
        temb_dim = 4 * nf

        def block(cin, cout, up=False, down=False):
            if m["resblock_type"] == "biggan":
                return ResnetBlockBigGANpp(act, cin, cout, temb_dim, up, down, m["dropout"],
                                           fir, k1, skip)
            return ResnetBlockDDPMpp(act, cin, cout, temb_dim, m["dropout"], skip)

        pin, pout, comb = m["progressive_input"], m["progressive"], m["progressive_combine"]
        mods.append(conv(channels, nf))
        hs_c = [nf]
        in_ch = nf
        pyr_ch = channels
        for i_level in range(levels):
            for _ in range(nrb):
                out_ch = nf * ch_mult[i_level]
                mods.append(block(in_ch, out_ch))
                in_ch = out_ch
                if all_res[i_level] in m["attn_resolutions"]:
                    mods.append(AttnBlockpp(in_ch, skip))
                hs_c.append(in_ch)
            if i_level != levels - 1:
                if m["resblock_type"] == "ddpm":
                    mods.append(Downsample(in_ch, in_ch, m["resamp_with_conv"], fir, k1))
                else:
                    mods.append(block(in_ch, in_ch, down=True))
                if pin == "input_skip":
                    mods.append(Combine(pyr_ch, in_ch, comb == "cat"))
                    if comb == "cat":
                        in_ch *= 2
                elif pin == "residual":
                    mods.append(Downsample(pyr_ch, in_ch, True, fir, k1))
                    pyr_ch = in_ch
                hs_c.append(in_ch)
        in_ch = hs_c[-1]
        mods += [block(in_ch, in_ch), AttnBlockpp(in_ch, skip), block(in_ch, in_ch)]
        pyramid_ch = 0
        for i_level in reversed(range(levels)):
            for _ in range(nrb + 1):
                out_ch = nf * ch_mult[i_level]
                mods.append(block(in_ch + hs_c.pop(), out_ch))
                in_ch = out_ch
            if all_res[i_level] in m["attn_resolutions"]:
                mods.append(AttnBlockpp(in_ch, skip))
            if pout == "output_skip":
                mods += [group_norm(in_ch), conv(in_ch, channels)]
                pyramid_ch = channels
            elif pout == "residual":
                if i_level == levels - 1:
                    mods += [group_norm(in_ch), conv(in_ch, in_ch)]
                else:
                    mods.append(Upsample(pyramid_ch, in_ch, True, fir, k1))
                pyramid_ch = in_ch
            if i_level != 0:
                if m["resblock_type"] == "ddpm":
                    mods.append(Upsample(in_ch, in_ch, m["resamp_with_conv"], fir, k1))
                else:
                    mods.append(block(in_ch, in_ch, up=True))
        assert not hs_c
        if pout != "output_skip":
            mods += [group_norm(in_ch), conv(in_ch, channels)]
        self.all_modules = nn.ModuleList(mods)
        self.levels, self.all_res = levels, all_res

    def forward(self, x, cond):
        m, d = self.m, self.d
        mods = iter(self.all_modules)
        nxt = lambda: next(mods)  # noqa: E731
        fir, k1, skip = m["fir"], m["fir_kernel"], m["skip_rescale"]
        pin, pout = m["progressive_input"], m["progressive"]
        cond = cond.to(x.dtype)
        if m["embedding_type"] == "fourier":
            emb = nxt()(torch.log(cond))
            used_sigmas = cond
        else:
            emb = timestep_embedding(cond, m["nf"])
            if m["scale_by_sigma"]:
                idx = cond.long().clamp(0, m["num_scales"] - 1)
                used_sigmas = self.sigmas[idx].to(x.dtype)
            else:
                used_sigmas = cond
        temb = None
        if m["conditional"]:
            temb = nxt()(emb)
            temb = nxt()(self.act(temb))
        if not d["centered"]:
            x = 2 * x - 1.0
        input_pyramid = x if pin != "none" else None
        hs = [nxt()(x)]
        for i_level in range(self.levels):
            for _ in range(m["num_res_blocks"]):
                h = nxt()(hs[-1], temb)
                if self.all_res[i_level] in m["attn_resolutions"]:
                    h = nxt()(h)
                hs.append(h)
            if i_level != self.levels - 1:
                op = nxt()
                h = op(hs[-1]) if m["resblock_type"] == "ddpm" else op(hs[-1], temb)
                if pin == "input_skip":
                    input_pyramid = (fir_downsample(input_pyramid, k1) if fir
                                     else naive_downsample(input_pyramid))
                    h = nxt()(input_pyramid, h)
                elif pin == "residual":
                    input_pyramid = nxt()(input_pyramid)
                    input_pyramid = residual(input_pyramid, h, skip)
                    h = input_pyramid
                hs.append(h)
        h = nxt()(hs[-1], temb)
        h = nxt()(h)
        h = nxt()(h, temb)
        pyramid = None
        for i_level in reversed(range(self.levels)):
            for _ in range(m["num_res_blocks"] + 1):
                h = nxt()(torch.cat([h, hs.pop()], 1), temb)
            if self.all_res[i_level] in m["attn_resolutions"]:
                h = nxt()(h)
            if pout == "output_skip":
                gn, cv = nxt(), nxt()
                ph = cv(self.act(gn(h)))
                if pyramid is None:
                    pyramid = ph
                else:
                    up = fir_upsample(pyramid, k1) if fir else naive_upsample(pyramid)
                    pyramid = up + ph
            elif pout == "residual":
                if i_level == self.levels - 1:
                    gn, cv = nxt(), nxt()
                    pyramid = cv(self.act(gn(h)))
                else:
                    pyramid = residual(nxt()(pyramid), h, skip)
                    h = pyramid
            if i_level != 0:
                op = nxt()
                h = op(h) if m["resblock_type"] == "ddpm" else op(h, temb)
        assert not hs
        if pout == "output_skip":
            h = pyramid
        else:
            gn, cv = nxt(), nxt()
            h = cv(self.act(gn(h)))
        assert next(mods, None) is None, "module bookkeeping"
        if m["scale_by_sigma"]:
            h = h / used_sigmas.reshape(-1, 1, 1, 1)
        return h


def load_weights(net, path):
    """Loads a scoreinv safetensors file by name (strict: every tensor must match)."""
    from safetensors.torch import load_file

    sd = {k: v for k, v in load_file(path).items()
          if k != "sigmas" and not k.startswith(("input.", "output."))}
    net.load_state_dict(sd, strict=True)
    return net
