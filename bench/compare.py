#!/usr/bin/env python3
"""brainmvp against the official PyTorch BrainMVP code: the same workloads, the same machine, the
same number of threads, in one invocation.

What it measures (one row each; `--list` prints them, `--only NAME[,NAME]` selects):

- window96          UniUnet (UniFormer-S encoder, 4 -> 3 channels, random weights) on one
                    [1, 4, 96, 96, 96] window, inference only (PyTorch: `.eval()`,
                    `torch.inference_mode()`, a plain forward; brainmvp: `bench segment` of a
                    96^3 case with roi 96, i.e. one window, read back to the host). Seconds per
                    window.
- case240           UniUnet over a whole [1, 4, 240, 240, 155] case by sliding-window inference
                    (roi 96, overlap 0.5, sw_batch_size 4, constant blending: 48 windows; PyTorch:
                    the official `Downstream/inference_util.py::sliding_window_inference`).
                    Seconds per case.
- pretrain-tiny-32, pretrain-tiny-96, pretrain-s-32, pretrain-s-96
                    one BrainMVP pre-training step (training mode, 3 subjects -> 6 crops of C^3
                    through the encoder, decoder, 10 MSE_A + MSE_B + contrastive, backward,
                    AdamW lr 3e-4, weight decay 1e-5, eps 1e-8, over every parameter including
                    the four 240x240x155 templates). "tiny" = UniFormer depths [1,1,1,1], widths
                    [8,16,32,64], head_dim 8; "s" = UniFormer-S. Seconds per step.
                    PyTorch at C = 96: the official `RecModel.forward` itself (it builds both
                    views: block masking with the templates / another modality), then backward and
                    AdamW. At C = 32 that forward cannot run (its template crop is the literal 96),
                    so the step is the same per-sample code with a C^3 template crop (the official
                    `utils/ops.py::Uniform_block_replace`), then
                    `tests/reference/make_golden.py::pretraining_step`, then AdamW; the output says
                    which. Both sides also time the encoder + decoder forward + backward alone.

Every measurement runs in its own subprocess, so each peak resident memory is that workload's
own (PyTorch: `getrusage` of the worker; brainmvp: `VmHWM` as its `--json` reports it). A
watchdog kills a subprocess whose resident memory passes `--mem-limit-gib` and records the row as
"did not fit"; a subprocess running past `--timeout-s` is recorded as timed out. Threads: brainmvp
gets RAYON_NUM_THREADS=T, PyTorch torch.set_num_threads(T) and set_num_interop_threads(1),
T = --threads (default: all CPUs). Timed figures are means of the timed runs after one untimed
warm-up (the JSON keeps every run and the minimum).

Run (the official code is read only from the folder named by BRAINMVP_OFFICIAL, a checkout of
github.com/shaohao011/BrainMVP; nothing of it is copied into this repository):

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.12.1 monai==1.6.1 \
        timm==1.0.31 einops==0.8.2 safetensors numpy==2.4.6 psutil
    cargo build --release
    BRAINMVP_OFFICIAL=/path/to/BrainMVP /tmp/ref/bin/python bench/compare.py --out bench/compare-out

`--quick` shrinks every row (tiny encoder, 32^3 windows, one pre-training step, UniFormer-S at
16^3) to check the plumbing in a few minutes; its figures are not a comparison. Writes
DIR/compare.json, DIR/compare.md, the subprocess logs in DIR/logs/ and brainmvp's own JSON in
DIR/raw/.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GIB = float(1 << 30)
TEMPLATES = ["flair", "t1", "t1c", "t2"]
CANVAS = [240, 240, 155]
SUBJECTS = 3

# name: (kind, what, settings). `big` rows use --big-repeats timed runs.
ROWS = {
    "window96": ("window", "UniUnet (UniFormer-S) forward of one 4x96^3 window, inference",
                 {"size": [96, 96, 96], "roi": 96, "overlap": 0.5, "sw_batch": 1}),
    "case240": ("case", "UniUnet sliding window over 4x240x240x155 (roi 96, overlap 0.5, "
                "sw batch 4, constant blend)",
                {"size": [240, 240, 155], "roi": 96, "overlap": 0.5, "sw_batch": 4, "big": True}),
    "pretrain-tiny-32": ("pretrain", "pre-training step, uniformer-tiny, 3 subjects x 32^3",
                         {"arch": "uniformer-tiny", "crop": 32}),
    "pretrain-tiny-96": ("pretrain", "pre-training step, uniformer-tiny, 3 subjects x 96^3",
                         {"arch": "uniformer-tiny", "crop": 96}),
    "pretrain-s-32": ("pretrain", "pre-training step, UniFormer-S, 3 subjects x 32^3",
                      {"arch": "uniformer-s", "crop": 32}),
    "pretrain-s-96": ("pretrain", "pre-training step, UniFormer-S, 3 subjects x 96^3 (official)",
                      {"arch": "uniformer-s", "crop": 96, "big": True}),
}
# --quick: what each row shrinks to.
QUICK = {
    "window96": {"size": [32, 32, 32], "roi": 32, "encoder": "uniformer-tiny"},
    "case240": {"size": [64, 48, 40], "roi": 32, "encoder": "uniformer-tiny"},
    "pretrain-s-32": {"crop": 16},
    "pretrain-s-96": {"crop": 16},
}


def log(message):
    print(f"[compare] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Settings and command lines
# ---------------------------------------------------------------------------------------------

def row_settings(name, args):
    """The concrete settings of row `name` under the command-line options."""
    kind, what, base = ROWS[name]
    settings = dict(base, kind=kind, what=what, threads=args.threads, canvas=CANVAS,
                    subjects=SUBJECTS, encoder=args.encoder, warmup=1)
    if args.quick:
        settings.update(QUICK.get(name, {}))
    settings["repeats"] = min(args.repeats, args.big_repeats) if base.get("big") else args.repeats
    return settings


def ours_command(binary, settings, json_path):
    """brainmvp's command line for one row."""
    s = settings
    if s["kind"] == "pretrain":
        return [binary, "bench", "pretrain", "--arch", s["arch"], "--crop", str(s["crop"]),
                "--subjects", str(s["subjects"]), "--canvas", ",".join(map(str, s["canvas"])),
                "--steps", str(s["repeats"]), "--warmup", str(s["warmup"]),
                "--json", json_path]
    return [binary, "bench", "segment", "--encoder", s["encoder"],
            "--size", ",".join(map(str, s["size"])), "--modalities", "4",
            "--roi", str(s["roi"]), "--overlap", str(s["overlap"]),
            "--sw-batch", str(s["sw_batch"]), "--repeats", str(s["repeats"]),
            "--json", json_path]


def pytorch_command(name, settings):
    return [sys.executable, os.path.abspath(__file__), "--worker", name,
            "--settings", json.dumps(settings)]


def thread_env(threads):
    env = dict(os.environ)
    for key in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    return env


# ---------------------------------------------------------------------------------------------
# Running a subprocess under the memory watchdog
# ---------------------------------------------------------------------------------------------

def tree_rss(process):
    """Resident bytes of a psutil process and its children (0 once it is gone)."""
    import psutil
    total = 0
    try:
        for member in [process] + process.children(recursive=True):
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def run_watched(command, env, log_base, mem_limit_gib, timeout_s):
    """Runs `command` with stdout/stderr into LOG_BASE.out/.err, polling its resident memory
    every 0.5 s. Returns {status: ok|error|oom|timeout, returncode, wall_s, max_rss_seen_bytes}."""
    import psutil
    limit = mem_limit_gib * GIB
    with open(log_base + ".out", "w") as out, open(log_base + ".err", "w") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=REPO)
        watched = psutil.Process(child.pid)
        started, status, seen, next_note = time.monotonic(), None, 0, 60.0
        while child.poll() is None:
            rss, elapsed = tree_rss(watched), time.monotonic() - started
            seen = max(seen, rss)
            if rss > limit:
                status = "oom"
            elif elapsed > timeout_s:
                status = "timeout"
            if status:
                child.kill()
                child.wait()
                break
            if elapsed > next_note:
                log(f"  ... still running after {elapsed:.0f} s, resident {rss / GIB:.2f} GiB")
                next_note += 60.0
            time.sleep(0.5)
        wall = time.monotonic() - started
    if status is None:
        status = "ok" if child.returncode == 0 else "error"
    return {"status": status, "returncode": child.returncode, "wall_s": round(wall, 2),
            "max_rss_seen_bytes": seen, "log": "logs/" + os.path.basename(log_base) + ".{out,err}"}


def figures(seconds, network=None):
    """Mean, min and count of timed runs (and of the network-only runs where given)."""
    out = {"seconds": seconds, "runs": len(seconds),
           "mean_s": sum(seconds) / len(seconds) if seconds else None,
           "min_s": min(seconds) if seconds else None}
    if network:
        out.update(network_seconds=network, network_mean_s=sum(network) / len(network),
                   network_min_s=min(network))
    return out


def run_pytorch(name, settings, args, logs):
    log(f"{name}: PyTorch (official code) ...")
    run = run_watched(pytorch_command(name, settings), thread_env(settings["threads"]),
                      os.path.join(logs, f"{name}.pytorch"), args.mem_limit_gib, args.timeout_s)
    run["command"] = "compare.py --worker " + name
    if run["status"] == "ok":
        record = last_json_line(os.path.join(logs, f"{name}.pytorch.out"))
        if record is None:
            run["status"] = "error"
        else:
            run.update(record)
            run.update(figures(record["seconds"], record.get("network_seconds")))
    report_side("PyTorch", run, args)
    return run


def run_ours(name, settings, args, logs, raw):
    json_path = os.path.join(raw, f"{name}.json")
    if os.path.exists(json_path):
        os.remove(json_path)
    command = ours_command(args.brainmvp, settings, json_path)
    log(f"{name}: brainmvp: {' '.join(command)}")
    run = run_watched(command, thread_env(settings["threads"]),
                      os.path.join(logs, f"{name}.brainmvp"), args.mem_limit_gib, args.timeout_s)
    run["command"] = " ".join(command)
    if run["status"] == "ok":
        with open(json_path) as handle:
            record = json.load(handle)
        run["record"] = record
        run["peak_rss_bytes"] = record.get("peak_rss_bytes")
        run["threads"] = record.get("threads")
        if settings["kind"] == "pretrain":
            run.update(figures(record["step_seconds"], record.get("network_seconds")))
        else:
            run.update(figures(record["seconds"]))
            run["windows"] = record.get("windows")
    report_side("brainmvp", run, args)
    return run


def last_json_line(path):
    with open(path) as handle:
        lines = [line for line in handle if line.startswith("{")]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def report_side(side, run, args):
    if run["status"] == "ok":
        peak = run.get("peak_rss_bytes") or 0
        log(f"  {side}: mean {run['mean_s']:.4g} s over {run['runs']} run(s), "
            f"peak RSS {peak / GIB:.2f} GiB ({run['wall_s']} s wall)")
    else:
        log(f"  {side}: {status_text(run, args)} (logs: {run['log']})")


def status_text(run, args):
    status = run["status"]
    if status == "oom":
        return f"did not fit in {args.mem_limit_gib:g} GiB"
    if status == "timeout":
        return f"timed out after {args.timeout_s:g} s"
    if status == "skipped":
        return "not run"
    if run.get("returncode") == -9:
        return "killed by SIGKILL (the system's out-of-memory killer?)"
    return f"failed (exit {run.get('returncode')})"


# ---------------------------------------------------------------------------------------------
# PyTorch worker (runs in its own process: `compare.py --worker NAME --settings JSON`)
# ---------------------------------------------------------------------------------------------

def worker_main(name, settings):
    import torch
    torch.set_num_threads(settings["threads"])
    torch.set_num_interop_threads(1)
    sys.dont_write_bytecode = True  # no __pycache__ in tests/reference or the official tree
    sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
    import make_golden  # sets up the official code's import paths; no other side effect
    import psutil
    after_imports = psutil.Process().memory_info().rss
    torch.manual_seed(0)
    kind = settings["kind"]
    if kind == "pretrain":
        result = worker_pretrain(make_golden, torch, settings)
    else:
        result = worker_segment(make_golden, torch, settings)
    result.update(workload=name, torch=torch.__version__, threads=torch.get_num_threads(),
                  rss_after_imports_bytes=after_imports,
                  peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(result), flush=True)


def timed_runs(step, warmup, repeats, label):
    """Runs `step` warmup + repeats times; returns (warm-up seconds, timed seconds)."""
    warm, runs = [], []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        step()
        elapsed = time.perf_counter() - started
        (warm if index < warmup else runs).append(elapsed)
        print(f"worker: {label} run {index + 1}/{warmup + repeats}: {elapsed:.3f} s",
              file=sys.stderr, flush=True)
    return warm, runs


def official_uniunet(mg, settings):
    """The official fine-tuning UniUnet, as make_golden builds it (eval mode: multi_scale=True
    builds two 1x1x1 deep-supervision heads that only run in training mode)."""
    cfg = mg.Config(settings["encoder"] == "uniformer-s")
    mg.small_classes(cfg)
    model = mg.down.UniUnet(input_shape=settings["roi"], in_channels=4, out_channels=3,
                            init_channels=cfg.widths[0], multi_scale=True)
    return model.eval()


def worker_segment(mg, torch, settings):
    model = official_uniunet(mg, settings)
    roi, windows = settings["roi"], [0]
    if settings["kind"] == "window":
        x = torch.randn(1, 4, roi, roi, roi)
        what = "UniUnet.forward of one window (eval, inference_mode)"

        def run():
            windows[0] += 1
            model(x)
    else:
        x = torch.randn(1, 4, *settings["size"])
        what = ("official inference_util.sliding_window_inference, constant blending "
                "(eval, inference_mode)")

        def predictor(batch, *more):  # the official code also passes the crop indexes
            windows[0] += batch.shape[0]
            return model(batch, *more)

        def run():
            mg.sliding_window_inference(inputs=x, roi_size=(roi,) * 3,
                                        sw_batch_size=settings["sw_batch"], predictor=predictor,
                                        overlap=settings["overlap"], mode="constant")
    with torch.inference_mode():
        warm, runs = timed_runs(run, settings["warmup"], settings["repeats"], settings["kind"])
    return {"what": what, "seconds": runs, "warmup_seconds": warm,
            "windows": windows[0] // (settings["warmup"] + settings["repeats"]),
            "parameters": sum(p.numel() for p in model.parameters())}


class PretrainArgs:
    """The `args` fields the official RecModel.forward reads (main.py defaults: mask ratio
    0.875, 8^3 blocks). Epoch 301 with start_epoch 0: past the template-only phase (view B takes
    another modality) and with the contrastive loss, as brainmvp's bench step."""
    mask_rate = 0.875
    mask_block_size = 8
    template_index = TEMPLATES
    start_epoch = 0
    epoch = 301


def official_rec_model(mg, torch, settings):
    """make_golden's RecModel (tiny: its small classes) with the canvas of the row, templates
    random (the official init is zero), and the AdamW of main.py with the row's settings."""
    cfg = mg.Config(settings["arch"] == "uniformer-s")
    mg.small_classes(cfg)
    cfg.canvas, cfg.roi = list(settings["canvas"]), settings["crop"]
    model = mg.rec_model(cfg).train()
    with torch.no_grad():
        model.rep_template.normal_()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-5, eps=1e-8)
    return model, optimizer


def step_inputs(torch, settings, generator):
    """One step's random batch: crops [S, 4, C, C, C], the modality reconstructed, template
    start points [S, 3] inside the canvas, and the series names as main.py passes them."""
    import random
    crop, subjects = settings["crop"], settings["subjects"]
    x = torch.rand(subjects, 4, crop, crop, crop, generator=generator)
    starts = torch.stack([torch.randint(0, size - crop + 1, (subjects,), generator=generator)
                          for size in settings["canvas"]], dim=1)
    series_name = [",".join(TEMPLATES)] * subjects
    rearranged = [",".join([m] * subjects) for m in TEMPLATES]
    return x, random.randrange(len(TEMPLATES)), starts, series_name, rearranged


def official_view(ops, model, x, i, index, start, crop, use_template):
    """One sample of one view exactly as utils/ops.py::aug_rand_with_learnable_rep, with a crop^3
    template crop instead of its literal 96."""
    h_s, w_s, d_s = [int(v) for v in start]
    template = model.rep_template[index]  # the series are named in template order
    template = (template - template.min()) / (template.max() - template.min() + 1e-9)
    template = template[h_s:h_s + crop, w_s:w_s + crop, d_s:d_s + crop]
    other = None if use_template else x[i][ops.sample_without_i(TEMPLATES, index)]
    return ops.Uniform_block_replace(PretrainArgs, x[i][index], other, template)


def built_views_step(mg, ops, model, batch, crop):
    """RecModel.forward's work for a crop other than 96: both views per sample by the official
    per-sample code, then make_golden.pretraining_step (encoder, decoder, the three losses,
    backward)."""
    import torch
    x, index, starts, _, _ = batch
    views = [[official_view(ops, model, x, i, index, starts[i], crop, use_template)
              for i in range(x.shape[0])] for use_template in (True, False)]
    view_a, view_b = (torch.stack(v).unsqueeze(1) for v in views)
    target = x[:, index].unsqueeze(1)
    mg.pretraining_step(model, (view_a, view_b, target), lambda f: model.decoder(*f))
    return view_a, view_b, target


def worker_pretrain(mg, torch, settings):
    import random
    import utils.ops as ops  # official, on the path make_golden set up
    random.seed(0)
    generator = torch.Generator().manual_seed(0)
    model, optimizer = official_rec_model(mg, torch, settings)
    crop, real = settings["crop"], settings["crop"] == 96
    last = {}

    def step():
        batch = step_inputs(torch, settings, generator)
        if real:
            x, index, starts, series_name, rearranged = batch
            loss, _, _, _ = model(x, args=PretrainArgs, index=index, rep_start_point=starts,
                                  rearranged_series=rearranged, cur_epoch=PretrainArgs.epoch,
                                  series_name=series_name)
            loss.backward()
            last["batch"] = batch
        else:
            last["views"] = built_views_step(mg, ops, model, batch, crop)
        optimizer.step()
        optimizer.zero_grad()

    warm, runs = timed_runs(step, settings["warmup"], settings["repeats"], "step")
    network = network_runs(mg, ops, model, last, settings)
    what = ("official RecModel.forward (builds both views: template / other-modality block "
            "masking) + backward + AdamW" if real else
            f"official per-sample view code (utils/ops.py Uniform_block_replace, {crop}^3 "
            "template crop; RecModel.forward's crop is the literal 96) + make_golden "
            "pretraining_step (encoder, decoder, 10 MSE_A + MSE_B + contrastive, backward) "
            "+ AdamW")
    return {"what": what, "real_forward": real, "seconds": runs, "warmup_seconds": warm,
            "network_seconds": network,
            "parameters": sum(p.numel() for p in model.parameters())}


def network_runs(mg, ops, model, last, settings):
    """Encoder + decoder forward + backward (MSE against the target) on the last step's views,
    as brainmvp's `network_seconds`."""
    import torch
    import torch.nn.functional as F
    if "views" in last:
        view_a, view_b, target = last["views"]
    else:
        x, index, starts, series_name, rearranged = last["batch"]
        view_a, view_b = (ops.aug_rand_with_learnable_rep(
            PretrainArgs, x, model.rep_template, index=index, rep_start_point=starts,
            rearranged_series=rearranged, use_temp=use_template, series_name=series_name)
            for use_template in (True, False))
        target = x[:, index].unsqueeze(1)
    inputs = torch.cat((view_a, view_b)).detach()
    targets = torch.cat((target, target)).detach()

    def run():
        model.zero_grad(set_to_none=True)
        features = model.encoder(inputs)
        F.mse_loss(model.decoder(*features), targets).backward()

    _, runs = timed_runs(run, settings["warmup"], settings["repeats"], "network")
    return runs


# ---------------------------------------------------------------------------------------------
# Machine description and output
# ---------------------------------------------------------------------------------------------

def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(args, official):
    import psutil
    import monai
    import torch
    fields = {}
    for line in (command_output(["lscpu"]) or "").splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    cores = None
    if fields.get("Core(s) per socket") and fields.get("Socket(s)"):
        cores = int(fields["Core(s) per socket"]) * int(fields["Socket(s)"])
    return {
        "cpu_model": fields.get("Model name", platform.processor()),
        "physical_cores": cores, "logical_cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "threads": args.threads, "torch": torch.__version__, "torch_threads": args.threads,
        "monai": monai.__version__, "python": platform.python_version(),
        "official_code": official,
        "official_commit": command_output(["git", "-C", official, "rev-parse", "HEAD"]),
        "brainmvp_binary": args.brainmvp,
        "brainmvp_commit": command_output(["git", "-C", REPO, "rev-parse", "HEAD"]),
        "brainmvp_tree_dirty": bool(command_output(["git", "-C", REPO, "status", "--porcelain",
                                                    "--untracked-files=no"])),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def seconds_cell(run, args):
    if run["status"] != "ok":
        return status_text(run, args)
    return f"{run['mean_s']:.4g} ({run['runs']})"


def rss_cell(run, args):
    if run["status"] == "oom":
        return f"> {args.mem_limit_gib:g}"
    peak = run.get("peak_rss_bytes")
    return f"{peak / GIB:.2f}" if peak else "—"


def ratio(ours, pytorch):
    if ours.get("mean_s") and pytorch.get("mean_s"):
        return ours["mean_s"] / pytorch["mean_s"]
    return None


def table_lines(rows, args):
    head = ["workload", "PyTorch s (runs)", "brainmvp s (runs)", "ratio ours/PyTorch",
            "PyTorch peak RSS GiB", "brainmvp peak RSS GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        value = row["ratio"]
        cells = [row["workload"] + (" (quick)" if args.quick else ""),
                 seconds_cell(row["pytorch"], args), seconds_cell(row["brainmvp"], args),
                 f"{value:.2f}" if value is not None else "—",
                 rss_cell(row["pytorch"], args), rss_cell(row["brainmvp"], args)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def network_lines(rows):
    """Encoder + decoder forward + backward alone (pre-training rows), as a second table."""
    lines = []
    for row in rows:
        torch_side, ours = row["pytorch"], row["brainmvp"]
        if row["settings"]["kind"] != "pretrain":
            continue
        if not (torch_side.get("network_mean_s") or ours.get("network_mean_s")):
            continue
        cell = (lambda r: f"{r['network_mean_s']:.4g} ({len(r['network_seconds'])})"
                if r.get("network_mean_s") else "—")
        both = torch_side.get("network_mean_s") and ours.get("network_mean_s")
        share = f"{ours['network_mean_s'] / torch_side['network_mean_s']:.2f}" if both else "—"
        lines.append(f"| {row['workload']} | {cell(torch_side)} | {cell(ours)} | {share} |")
    if not lines:
        return []
    return ["", "Encoder + decoder forward + backward alone (MSE only, no optimiser):", "",
            "| workload | PyTorch s (runs) | brainmvp s (runs) | ratio ours/PyTorch |",
            "|---|---|---|---|"] + lines


def markdown(rows, machine, args):
    m = machine
    dirty = " (uncommitted changes)" if m["brainmvp_tree_dirty"] else ""
    lines = [f"# brainmvp vs official PyTorch BrainMVP ({m['date']})", "",
             f"CPU {m['cpu_model']}, {m['physical_cores']} cores ({m['logical_cpus']} logical), "
             f"{m['memory_gib']} GiB, load average at start {m['load_average_at_start']}; "
             f"{m['threads']} threads each side; torch {m['torch']}, MONAI {m['monai']}; "
             f"official code {m['official_commit'] or 'commit unknown'}; brainmvp "
             f"{m['brainmvp_commit'] or 'commit unknown'}{dirty}.",
             "", "Seconds: mean of the timed runs (count in brackets) after one untimed warm-up; "
             "ratio < 1 means brainmvp is faster. Peak RSS: the subprocess's own. "
             "PyTorch's includes the interpreter and its imports (torch, MONAI, timm: "
             f"{imports_gib(rows)} GiB resident before any model is built). "
             f"Memory limit {args.mem_limit_gib:g} GiB, timeout {args.timeout_s:g} s per side.",
             ""]
    if args.quick:
        lines += ["**--quick: shrunken rows for a plumbing check, not a comparison.**", ""]
    lines += table_lines(rows, args) + network_lines(rows) + ["", "What each row ran:", ""]
    for row in rows:
        what = row["pytorch"].get("what", row["settings"]["what"])
        lines.append(f"- {row['workload']}: settings {describe(row['settings'])}; PyTorch: "
                     f"{what}; brainmvp: `{row['brainmvp'].get('command', 'not run')}`"
                     + "".join(f" **{note}**" for note in row["notes"]))
    return "\n".join(lines) + "\n"


def imports_gib(rows):
    values = [r["pytorch"]["rss_after_imports_bytes"] for r in rows
              if r["pytorch"].get("rss_after_imports_bytes")]
    return f"{min(values) / GIB:.2f}" if values else "?"


def describe(settings):
    keys = ("size", "roi", "overlap", "sw_batch", "encoder") if settings["kind"] != "pretrain" \
        else ("arch", "crop", "subjects", "canvas")
    return ", ".join(f"{k} {settings[k]}" for k in keys if k in settings)


def write_outputs(out_dir, rows, machine, args):
    record = {"machine": machine,
              "options": {"threads": args.threads, "repeats": args.repeats,
                          "big_repeats": args.big_repeats, "quick": args.quick,
                          "mem_limit_gib": args.mem_limit_gib, "timeout_s": args.timeout_s},
              "rows": rows}
    with open(os.path.join(out_dir, "compare.json"), "w") as handle:
        json.dump(record, handle, indent=1)
        handle.write("\n")
    text = markdown(rows, machine, args)
    with open(os.path.join(out_dir, "compare.md"), "w") as handle:
        handle.write(text)
    return text


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(HERE, "compare-out"))
    parser.add_argument("--only", help="comma-separated workloads (see --list)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, help="timed runs per row (default 3; 1 --quick)")
    parser.add_argument("--big-repeats", type=int, default=1,
                        help="most timed runs of the big rows (case240, pretrain-s-96)")
    parser.add_argument("--mem-limit-gib", type=float, default=22.0)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--encoder", choices=("uniformer-s", "uniformer-tiny"), default="uniformer-s",
                        help="UniUnet encoder of the window96/case240 rows, both sides")
    parser.add_argument("--quick", action="store_true", help="shrink every row (plumbing check)")
    parser.add_argument("--side", choices=("both", "pytorch", "brainmvp"), default="both")
    parser.add_argument("--brainmvp", default=os.path.join(REPO, "target", "release", "brainmvp"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    return parser.parse_args()


def selected_rows(args):
    names = args.only.split(",") if args.only else list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        sys.exit(f"compare.py: unknown workload(s) {unknown}; known: {', '.join(ROWS)}")
    return names


def check_inputs(args):
    official = os.environ.get("BRAINMVP_OFFICIAL")
    if not official or not os.path.isdir(os.path.join(official, "models")):
        sys.exit("compare.py: set BRAINMVP_OFFICIAL to a checkout of the official BrainMVP code "
                 "(github.com/shaohao011/BrainMVP)")
    if args.side != "pytorch" and not os.access(args.brainmvp, os.X_OK):
        sys.exit(f"compare.py: no brainmvp binary at {args.brainmvp} (cargo build --release, "
                 "or --brainmvp PATH, or --side pytorch)")
    return os.path.abspath(official)


def run_row(name, args, logs, raw):
    settings = row_settings(name, args)
    skipped = {"status": "skipped"}
    torch_side = run_pytorch(name, settings, args, logs) if args.side != "brainmvp" else skipped
    ours = run_ours(name, settings, args, logs, raw) if args.side != "pytorch" else skipped
    row = {"workload": name, "settings": settings, "pytorch": torch_side, "brainmvp": ours,
           "ratio": ratio(ours, torch_side), "notes": []}
    counts = (torch_side.get("windows"), ours.get("windows"))
    if None not in counts and counts[0] != counts[1]:
        row["notes"].append(f"windows per case differ: PyTorch {counts[0]}, brainmvp {counts[1]}")
        log(f"  warning: {row['notes'][-1]}")
    return row


def main():
    args = parse_args()
    if args.worker:
        return worker_main(args.worker, json.loads(args.settings))
    if args.list:
        for name, (_, what, _) in ROWS.items():
            print(f"{name:18} {what}")
        return None
    names = selected_rows(args)
    official = check_inputs(args)
    args.brainmvp = os.path.abspath(args.brainmvp)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    logs, raw = os.path.join(args.out, "logs"), os.path.join(args.out, "raw")
    os.makedirs(logs, exist_ok=True)
    os.makedirs(raw, exist_ok=True)
    machine = machine_info(args, official)
    log(f"{len(names)} workload(s), {args.threads} threads, results in {args.out}")
    rows = []
    for number, name in enumerate(names, start=1):
        log(f"[{number}/{len(names)}] {name}: {ROWS[name][1]}")
        rows.append(run_row(name, args, logs, raw))
        text = write_outputs(args.out, rows, machine, args)  # partial results survive
    print(text, end="")
    return None


if __name__ == "__main__":
    main()
