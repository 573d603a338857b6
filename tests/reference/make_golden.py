#!/usr/bin/env python3
"""Golden fixtures from the official BrainMVP PyTorch code, for brainmvp's Rust golden tests.

The official code (github shaohao011/BrainMVP) is read from the folder named by the environment
variable BRAINMVP_OFFICIAL (a checkout of that repository); none of it is copied here. Needs torch
(CPU), MONAI, timm, einops, numpy and safetensors from PyPI.

    BRAINMVP_OFFICIAL=/path/to/BrainMVP python3 tests/reference/make_golden.py [--out DIR] [--full]

Writes into DIR (default tests/reference/fixtures):
- rec_model.pt    an official pre-training checkpoint ({current_epoch, state_dict, optimizer, ...},
                  keys with DDP's `module.` prefix) of `models/Uniformer.py::RecModel`
- uniunet.pt      a plain state dict of `Downstream/model/Uni_unet.py::UniUnet` (4 -> 3,
                  multi_scale=True)
- unet_rec_model.pt  an official pre-training checkpoint of the UNet backbone (`--use_Unet`,
                  `models/Unet.py::RecModel`), same nesting, weights stored as f16 (see below)
- golden.safetensors  fixed inputs (stored as f16, exactly representable) and the official outputs
                  (f32) named below
- golden.json     versions, seeds, shapes and what each tensor is

Small configuration (`tiny`, the default): the official classes with UniFormer depths [1,1,1,1],
widths [8,16,32,64], head_dim 8 (brainmvp's `uniformer-tiny` preset). The official decoders hard-code
the UniFormer-S widths 512/320/128/64; the script builds them through the same MONAI blocks with
those four numbers mapped onto the small widths (nothing else of the classes changes). `--full`
builds UniFormer-S (UniUnet 4 -> 3 at 96^3; pre-training loss on 2 x 64^3 views; a 128x128x96
sliding window of four 96^3 windows) instead: not committed (about 300 MB), for the comparison in
docs/official-parity.md.

The UNet's smallest official configuration is base width 8 (its GroupNorm has 8 groups; the
blocks per level are fixed at [1, 2, 2, 4]): 1.2 M parameters, 4.7 MB as f32. The official
`RecModel.__init__` hard-codes base width 32; in the small configuration its `make_encoder` is
wrapped to set 8 first (nothing else of the class changes).

To keep the fixtures small, in the small configuration every kernel, weight matrix and template of
every model is a contiguous slice, at its own random offset, of one pool of f16 values, so each
checkpoint stores the pool once (torch.save keeps one copy of a shared storage) and f32 holds every
value exactly; vectors (biases, norms, running statistics) are f16 values of their own. Different
offsets give different values to every tensor, so a swapped or transposed kernel still fails.
`--full` keeps independent f32 values (its kernels at their initialisation, vectors random).

Every parameter and BatchNorm buffer is randomised (not left at its initial 0/1) so that a missing
bias, norm or running statistic cannot pass unnoticed. Tensor layouts are the official ones:
volumes [N, C, X, Y, Z] (MONAI's H, W, D), the encoder's stage outputs [N, C, Z, X, Y] (after its
own `permute(0,1,4,2,3)`).
"""

import argparse
import json
import os
import platform
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn

OFFICIAL = os.environ.get("BRAINMVP_OFFICIAL")
if not OFFICIAL or not os.path.isdir(os.path.join(OFFICIAL, "models")):
    sys.exit("make_golden.py: set BRAINMVP_OFFICIAL to a checkout of the official BrainMVP code")
sys.path.insert(0, OFFICIAL)
sys.path.insert(1, os.path.join(OFFICIAL, "Downstream"))

import einops  # noqa: E402
import monai  # noqa: E402
import timm  # noqa: E402
from monai.networks.blocks import UnetrUpBlock, UnetOutBlock  # noqa: E402

import models.Uniformer as pre  # noqa: E402  (pre-training: RecModel, UniSegDecoder)
import models.uniformer_blocks as pre_blocks  # noqa: E402
import models.Unet as unet  # noqa: E402  (pre-training with --use_Unet: RecModel)
import model.Uni_unet as down  # noqa: E402  (fine-tuning: UniUnet)
import model.uniformer as down_blocks  # noqa: E402
from inference_util import sliding_window_inference  # noqa: E402
from losses.loss import Contrast_Loss  # noqa: E402

SEED = 20250611
OFFICIAL_WIDTHS = [64, 128, 320, 512]


class Config:
    def __init__(self, full):
        self.full = full
        self.depths = [3, 4, 8, 3] if full else [1, 1, 1, 1]
        self.widths = OFFICIAL_WIDTHS if full else [8, 16, 32, 64]
        self.head_dim = 64 if full else 8
        self.canvas = [240, 240, 155] if full else [40, 36, 20]  # template canvas [X, Y, Z]
        self.encoder_input = [1, 1, 96, 96, 96] if full else [1, 1, 48, 32, 16]
        self.loss_views = [2, 1, 64, 64, 64] if full else [2, 1, 32, 32, 16]
        self.uniunet_input = [1, 4, 96, 96, 96] if full else [1, 4, 32, 16, 16]
        self.window_input = [1, 4, 128, 128, 96] if full else [1, 4, 40, 36, 20]
        self.roi = 96 if full else 32
        self.features = [3, self.widths[3], 6, 6, 6] if full else [3, self.widths[3], 3, 2, 1]
        self.template_crop = [8, 4, 2, 96, 96, 96] if full else [3, 2, 1, 32, 32, 16]
        self.unet_width = 32 if full else 8
        self.unet_canvas = [240, 240, 155] if full else [24, 20, 16]
        self.unet_input = [1, 1, 96, 96, 96] if full else [1, 1, 16, 24, 32]
        self.unet_loss_views = [2, 1, 64, 64, 64] if full else [2, 1, 16, 16, 16]


def small_classes(cfg):
    """Points the official modules' names at the same classes with the small widths."""
    if cfg.full:
        return
    width_of = dict(zip(OFFICIAL_WIDTHS, cfg.widths))

    def uniformer(blocks, **kwargs):
        return blocks.UniFormer(depth=cfg.depths, embed_dim=cfg.widths, head_dim=cfg.head_dim,
                                mlp_ratio=4, qkv_bias=True,
                                norm_layer=partial(nn.LayerNorm, eps=1e-6), **kwargs)

    def up_block(in_channels, out_channels, **kwargs):
        return UnetrUpBlock(in_channels=width_of[in_channels], out_channels=width_of[out_channels],
                            **kwargs)

    def out_block(spatial_dims, in_channels, out_channels):
        return UnetOutBlock(spatial_dims=spatial_dims, in_channels=width_of[in_channels],
                            out_channels=out_channels)

    def patch_embed(module):
        def build(embed_dim, **kwargs):
            return module.PatchEmbed(embed_dim=width_of[embed_dim], **kwargs)
        return build

    for module, blocks in ((pre, pre_blocks), (down, down_blocks)):
        module.uniformer_small = partial(uniformer, blocks)
        module.UnetrUpBlock = up_block
        module.UnetOutBlock = out_block
    pre.PatchEmbed = patch_embed(pre_blocks)
    down.PatchEmbed = patch_embed(down_blocks)


def random_vector(name, shape, generator):
    """A random bias, norm affine or BatchNorm running statistic (not left at its 0/1)."""
    noise = torch.randn(shape, generator=generator)
    if name.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    if name.endswith("weight"):
        return 1.0 + 0.1 * noise
    return 0.1 * noise


def randomise(model, generator):
    """Full size: random vectors and templates (kernels keep their init); returns the state."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if tensor.dim() == 1:
                tensor.copy_(random_vector(name, tensor.shape, generator))
            elif name.endswith("rep_template"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def pooled_state(model, generator):
    """Small configuration: randomises `model` and returns its state dict as f16 tensors
    (integer buffers as they are). Kernels and templates are slices of one shared pool, so the
    file stores the pool once; vectors are their own small tensors. The model holds the same
    values in f32."""
    state = model.state_dict()
    largest = max(t.numel() for t in state.values() if t.dim() >= 2)
    pool = ((torch.rand(largest + 4096, generator=generator) * 2 - 1) * 0.05).half()
    saved = {}
    with torch.no_grad():
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                saved[name] = tensor.clone()
                continue
            if tensor.dim() >= 2:
                start = int(torch.randint(0, pool.numel() - tensor.numel() + 1, (1,),
                                          generator=generator))
                value = pool[start:start + tensor.numel()].view(tensor.shape)
            else:
                value = random_vector(name, tensor.shape, generator).half()
            tensor.copy_(value.float())
            saved[name] = value
    return saved


def random_state(cfg, model, generator):
    """The state the checkpoint holds after randomising `model` (see the module docstring)."""
    return randomise(model, generator) if cfg.full else pooled_state(model, generator)


def exact_input(shape, generator):
    """Uniform [-1, 1) values rounded to f16, so the f16 copy in the fixture is exact."""
    values = torch.rand(shape, generator=generator) * 2 - 1
    return values.half().float()


def rec_model(cfg):
    class Args:
        device = "cpu"
        in_channels = 1
        roi_x = cfg.roi
        initial_checkpoint = None
        template_index = ["flair", "t1", "t1c", "t2"]
        dst_h, dst_w, dst_d = cfg.canvas
    return pre.RecModel(Args())


def golden_rec_model(cfg, generator, out):
    model = rec_model(cfg)
    # The checkpoint holds these weights and buffers: the training-mode forward below moves the
    # BatchNorm running statistics, and the optimizer step the parameters.
    state = random_state(cfg, model, generator)
    model.eval()
    x = exact_input(cfg.encoder_input, generator)
    with torch.no_grad():
        _, x1, x2, x3, x4 = model.encoder(x)
        rec = model.decoder(x, x1, x2, x3, x4)
    out["encoder.input"] = (x, "f16")
    for index, stage in enumerate((x1, x2, x3, x4), start=1):
        out[f"encoder.eval.stage{index}"] = (stage, "f32")
    out["rec.eval.output"] = (rec, "f32")

    # Template normalisation and crop exactly as utils/ops.py::aug_rand_with_learnable_rep
    # (its crop size is the literal 96; the formula is the same for any size).
    index, h_s, w_s, d_s, h, w, d = [1] + cfg.template_crop[:3] + cfg.template_crop[3:]
    template = model.rep_template[index].detach()
    template = (template - template.min()) / (template.max() - template.min() + 1e-9)
    out["template.normalised_crop"] = (template[h_s:h_s + h, w_s:w_s + w, d_s:d_s + d], "f32")

    # The pre-training loss of RecModel.forward with given views (its masking is random):
    # training mode (BatchNorm on batch statistics), L = 10 MSE_A + MSE_B + L_CL.
    model.train()
    view_a = exact_input(cfg.loss_views, generator)
    view_b = exact_input(cfg.loss_views, generator)
    target = exact_input(cfg.loss_views, generator)
    terms = pretraining_step(model, (view_a, view_b, target), lambda f: model.decoder(*f))
    out["loss.view_a"] = (view_a, "f16")
    out["loss.view_b"] = (view_b, "f16")
    out["loss.target"] = (target, "f16")
    out["loss.terms"] = (terms, "f32")
    grads = {
        "encoder.uniformer.patch_embed1.proj.weight": "grad.patch_embed1",
        "encoder.uniformer.blocks3.0.attn.qkv.weight": "grad.blocks3_qkv",
        "decoder.decoder5.transp_conv.conv.weight": "grad.decoder5",
    }
    parameters = dict(model.named_parameters())
    for name, key in grads.items():
        out[key] = (parameters[name].grad.detach().clone(), "f32")
    # An optimizer state in the checkpoint, as the released files have (over one layer only, to
    # keep the fixture small: its structure is the same).
    optimizer = torch.optim.AdamW(model.encoder.uniformer.patch_embed1.parameters(), lr=1e-4)
    return state, optimizer


def golden_contrastive(cfg, generator, out):
    features_a = exact_input(cfg.features, generator)
    features_b = exact_input(cfg.features, generator)
    loss = Contrast_Loss(temperature=1.0)(features_b.flatten(1), features_a.flatten(1))
    out["contrastive.features_a"] = (features_a, "f16")
    out["contrastive.features_b"] = (features_b, "f16")
    out["contrastive.loss"] = (loss.reshape(1), "f32")


def golden_uniunet(cfg, generator, out):
    init_channels = cfg.widths[0]
    model = down.UniUnet(input_shape=cfg.roi, in_channels=4, out_channels=3,
                         init_channels=init_channels, multi_scale=True)
    # The file holds these weights and buffers (training mode below moves the running statistics).
    state = random_state(cfg, model, generator)
    x = exact_input(cfg.uniunet_input, generator)
    out["uniunet.input"] = (x, "f16")
    model.eval()
    with torch.no_grad():
        out["uniunet.eval.output"] = (model(x), "f32")
    window_input = exact_input(cfg.window_input, generator)
    with torch.no_grad():
        window = sliding_window_inference(inputs=window_input, roi_size=(cfg.roi,) * 3,
                                          sw_batch_size=1, predictor=model, overlap=0.5)
    out["window.input"] = (window_input, "f16")
    out["window.output"] = (window, "f32")
    model.train()
    with torch.no_grad():
        (out4, out3, full), _ = model(x)
    out["uniunet.train.output"] = (full, "f32")
    out["uniunet.train.deep_stride4"] = (out4, "f32")
    out["uniunet.train.deep_stride2"] = (out3, "f32")
    # BatchNorm's running statistics after that one training-mode forward (momentum 0.1;
    # PyTorch updates the variance with the unbiased batch variance).
    for name, norm in (("encoder_norm", model.encoder.norm),
                       ("blocks1_norm1", model.encoder.blocks1[0].norm1)):
        out[f"uniunet.train.{name}.running_mean"] = (norm.running_mean, "f32")
        out[f"uniunet.train.{name}.running_var"] = (norm.running_var, "f32")
    return state


def small_unet(cfg):
    """Wraps the official UNet RecModel's make_encoder to use the small base width."""
    if cfg.full:
        return
    make_encoder = unet.RecModel.make_encoder

    def with_small_width(self):
        self.init_channels = cfg.unet_width
        make_encoder(self)

    unet.RecModel.make_encoder = with_small_width


def unet_rec_model(cfg):
    class Args:
        roi_x = cfg.roi
        in_channels = 1
        template_index = ["flair", "t1", "t1c", "t2"]
        dst_h, dst_w, dst_d = cfg.unet_canvas
    return unet.RecModel(Args())


def golden_unet_rec_model(cfg, generator, out):
    """The UNet backbone's pre-training network: encoder features, reconstruction, template,
    and the training loss with given views and some gradients (no norm with running statistics
    here: training and evaluation mode compute the same)."""
    model = unet_rec_model(cfg)
    state = random_state(cfg, model, generator)
    x = exact_input(cfg.unet_input, generator)
    with torch.no_grad():
        features = model.encoder(x)
        rec = model.decoder(features)
    out["unet.input"] = (x, "f16")
    for index, feature in enumerate(features, start=1):
        out[f"unet.feature{index}"] = (feature, "f32")
    out["unet.rec.output"] = (rec, "f32")
    template = model.rep_template[2].detach()
    template = (template - template.min()) / (template.max() - template.min() + 1e-9)
    out["unet.template.normalised2"] = (template, "f32")

    view_a = exact_input(cfg.unet_loss_views, generator)
    view_b = exact_input(cfg.unet_loss_views, generator)
    target = exact_input(cfg.unet_loss_views, generator)
    terms = pretraining_step(model, (view_a, view_b, target), model.decoder)
    out["unet.loss.view_a"] = (view_a, "f16")
    out["unet.loss.view_b"] = (view_b, "f16")
    out["unet.loss.target"] = (target, "f16")
    out["unet.loss.terms"] = (terms, "f32")
    parameters = dict(model.named_parameters())
    for name in UNET_GRADIENTS:
        out[f"unet.grad.{name}"] = (parameters[name].grad.detach().clone(), "f32")
    if cfg.full:
        unet_gradients_f64(model, (view_a, view_b, target), out)
    return state


def pretraining_step(model, views, decode):
    """RecModel.forward's loss on given views (its masking is random), L = 10 MSE_A + MSE_B +
    L_CL with kl_loss(student = view B, teacher = view A); backward run. Returns the detached
    terms [L, MSE_A, MSE_B, L_CL]. `decode` maps the encoder's feature list to the output."""
    view_a, view_b, target = views
    samples = view_a.shape[0]
    feature = model.encoder(torch.cat((view_a, view_b), dim=0))
    teacher, student = feature[-1][:samples], feature[-1][samples:]
    loss_cons = model.kl_loss(student.flatten(1), teacher.flatten(1))
    rec_x = decode(feature)
    loss_a = model.recon_loss(rec_x[:samples], target)
    loss_b = model.recon_loss(rec_x[samples:], target)
    loss = loss_a * 10 + loss_b + loss_cons
    loss.backward()
    return torch.stack([loss, loss_a, loss_b, loss_cons]).detach()


UNET_GRADIENTS = ("conv1a.weight", "ds1.weight", "conv4d.gn2.weight", "up2convb.conv2.weight",
                  "up1conv.bias")


def unet_gradients_f64(model, views, out):
    """Full size only: the same step in float64 (`unet.grad.NAME.f64`). At 2 x 64^3 the early
    layers' gradients are ill-conditioned in f32 (PyTorch's own f32 result is ~2e-3 off the f64
    one for conv1a), so the test measures both f32 results against this one."""
    model = model.double()
    model.zero_grad()
    pretraining_step(model, tuple(view.double() for view in views), model.decoder)
    parameters = dict(model.named_parameters())
    for name in UNET_GRADIENTS:
        out[f"unet.grad.{name}.f64"] = (parameters[name].grad.detach().clone(), "f32")
    model.float()


def save_fixtures(out_dir, cfg, rec_state, optimizer, uniunet_state, unet_state, out):
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    optimizer.step()  # gives the checkpoint a real optimizer state, as the released file has
    checkpoint = {
        "current_epoch": 7,
        "state_dict": {"module." + k: v for k, v in rec_state.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": None,
        "val_best": 0.0,
    }
    torch.save(checkpoint, os.path.join(out_dir, "rec_model.pt"))
    torch.save(uniunet_state, os.path.join(out_dir, "uniunet.pt"))
    unet_checkpoint = {
        "epoch": 3,
        "state_dict": {"module." + k: v for k, v in unet_state.items()},
    }
    torch.save(unet_checkpoint, os.path.join(out_dir, "unet_rec_model.pt"))
    tensors, described = {}, {}
    for name, (tensor, dtype) in out.items():
        tensor = tensor.detach().contiguous()
        tensors[name] = tensor.half() if dtype == "f16" else tensor.float()
        described[name] = {"shape": list(tensor.shape), "dtype": dtype}
    save_file(tensors, os.path.join(out_dir, "golden.safetensors"))
    meta = {
        "made_by": "tests/reference/make_golden.py",
        "official_code": os.environ.get("BRAINMVP_OFFICIAL_COMMIT", "unknown"),
        "seed": SEED,
        "configuration": "full" if cfg.full else "tiny",
        "depths": cfg.depths, "widths": cfg.widths, "head_dim": cfg.head_dim,
        "unet_base_width": cfg.unet_width, "unet_template_canvas_xyz": cfg.unet_canvas,
        "template_canvas_xyz": cfg.canvas, "template_modalities": ["flair", "t1", "t1c", "t2"],
        "template_crop": {"index": 1, "start_xyz": cfg.template_crop[:3],
                          "size_xyz": cfg.template_crop[3:]},
        "sliding_window": {"roi": cfg.roi, "overlap": 0.5, "sw_batch_size": 1,
                           "mode": "constant"},
        "layouts": {"volumes": "[N, C, X, Y, Z]", "encoder stages": "[N, C, Z, X, Y]",
                    "templates": "[M, X, Y, Z]"},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "monai": monai.__version__, "numpy": np.__version__,
                     "timm": timm.__version__, "einops": einops.__version__},
        "tensors": described,
    }
    with open(os.path.join(out_dir, "golden.json"), "w") as handle:
        json.dump(meta, handle, indent=1)
        handle.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "fixtures"))
    parser.add_argument("--full", action="store_true", help="UniFormer-S at 96^3 (not for CI)")
    args = parser.parse_args()
    cfg = Config(args.full)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(SEED)
    small_classes(cfg)
    small_unet(cfg)
    out = {}
    rec_state, optimizer = golden_rec_model(cfg, generator, out)
    golden_contrastive(cfg, generator, out)
    uniunet_state = golden_uniunet(cfg, generator, out)
    # Last, so that the generator draws of everything before are unchanged.
    unet_state = golden_unet_rec_model(cfg, generator, out)
    save_fixtures(args.out, cfg, rec_state, optimizer, uniunet_state, unet_state, out)
    print(f"wrote {args.out}: {len(out)} tensors")


if __name__ == "__main__":
    main()
