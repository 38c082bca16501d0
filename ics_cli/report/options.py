"""The help text of every run option (one per RunConfig field) and of the backend options: what
`ics train --help` and `ics sweep --help` print, from the registries the choices come from."""

from __future__ import annotations

from .. import config
from ..net import norms
from ..net.data import DATASETS, ENV_DIR


def listed(values) -> str:
    """The allowed values, for help texts (in the help column, where they wrap at 80 columns): names,
    or the members of a choice Enum (str-valued, so each joins as its value)."""
    return ", ".join(getattr(v, "value", v) for v in values)


HELP = {
    "dataset": f"Dataset: {listed(DATASETS)} (mnist-5k is embedded; synthetic is generated; "
               "the others are read from --data-dir).",
    "data_dir": f"Folder with the dataset files (mnist, fashion-mnist, cifar10: in it, or in a subfolder named "
                f"like the dataset). Default: ${ENV_DIR}, else ./data.",
    "split": f"Train/test split: {listed(config.SPLITS)} (official: the dataset's own; heldout: the last 10000 "
             "training images are the test set, CIFAR-10's data_batch_5). Default: heldout for cifar10, else "
             "official.",
    "download": "Download a torchvision dataset into --data-dir if it is missing.",
    "binarize": "Threshold pixels at 0.5 to {0, 1} instead of standardizing (Ioffe & Szegedy's binary MNIST).",
    "model": f"Network: {listed(config.MODELS)}.",
    "depth": "Number of hidden layers (default: mlp 3, cnn 3, resmlp 20, vgg 8, dln 25); resnet: weighted "
             "layers 6n+2 (8, 14, 20, 32, 44, 56, 110; default 20, He et al.'s CIFAR ResNet).",
    "width": "Units per hidden layer or channels (default: mlp 100, cnn 32, resmlp 100, vgg 32, dln 10); "
             "resnet: channels of the first stage w, then 2w and 4w (default 16).",
    "activation": f"Nonlinearity: {listed(config.ACTIVATIONS)} (default: sigmoid for mlp and cnn, relu for resmlp, "
                  "vgg and resnet, identity for dln).",
    "init": f"Weight init: {listed(config.INITS)} (xavier = Glorot uniform; gaussian uses --init-std).",
    "init_std": "Standard deviation of the gaussian init.",
    "norm": f"Normalization: {listed(norms.REGISTRY)} (see `ics norms`).",
    "groups": "Groups for --norm group (must divide the width).",
    "eps": "Epsilon added to the variance inside every norm.",
    "bn_momentum": "Momentum of batch norm's running statistics (torch convention).",
    "noise": f"Noise after every norm site: {listed(config.NOISES)} (santurkar: Santurkar et al. 2018's Algorithm 1, "
             "a fresh random scale and shift per unit each step, in training passes only).",
    "optimizer": f"Optimizer: {listed(config.OPTIMIZERS)}.",
    "ghost_size": "Samples per ghost batch of --norm ghost-batch (must divide the normalization batch).",
    "renorm_rmax": "Final bound r_max on batch-renorm's r (r is clipped to [1/r_max, r_max]).",
    "renorm_dmax": "Final bound d_max on batch-renorm's d (d is clipped to [-d_max, d_max]).",
    "renorm_warmup": "Steps of plain batch norm (r = 1, d = 0) before batch-renorm's bounds ramp up "
                     "(default: steps/16, the paper's schedule scaled to the run).",
    "renorm_rmax_at": "Step at which r_max reaches --renorm-rmax (default: steps/2).",
    "renorm_dmax_at": "Step at which d_max reaches --renorm-dmax (default: 5 x steps/16).",
    "bn_eval": f"Test-time statistics of batch-statistics norms for test_loss/test_acc: {listed(config.BN_EVALS)} (ema: "
               "running averages; precise: PreciseBN over --precise-samples training images; batch: the test "
               "batches' own).",
    "precise_samples": "Training images PreciseBN averages over (--bn-eval precise), rounded down to whole "
                       "normalization batches; the same images at every evaluation.",
    "freeze_bn_at": "FrozenBN: from this fraction of the run on, batch-statistics norms normalize with their "
                    "population statistics in training too and stop updating them (PreciseBN's under "
                    "--bn-eval precise).",
    "micro_batch": "Normalize over consecutive micro-batches of this size (it must divide --batch-size); the "
                   "gradient is accumulated over the whole batch.",
    "batch_sampler": f"Mini-batches: {listed(config.BATCH_SAMPLERS)} (iid: shuffled epochs; paired: batch-size/2 classes "
                     "x 2 images each, non-i.i.d.; two-class: 2 classes x batch-size/2 images each, non-i.i.d. "
                     "as Ioffe 2017's few-class batches).",
    "lr_scaling": f"Learning-rate scaling: {listed(config.LR_SCALINGS)} (linear: the optimizer's lr is --lr x --batch-size "
                  "/ --lr-base-batch, Goyal et al. 2017).",
    "lr_base_batch": "The batch size at which --lr applies under --lr-scaling linear.",
    "lr": "Learning rate (> 0).",
    "regress_loss": f"Regression loss per sample over the outputs: {listed(config.REGRESS_LOSSES)} (mean: (1/d) Σⱼ "
                    "(f(x)ⱼ − yⱼ)², the project's; sum: ‖f(x) − y‖², the literal objective, d times larger, so lr "
                    "η under sum takes the steps of d·η under mean); a batch's loss is the sum over its samples.",
    "lr_schedule": f"Learning-rate schedule: {listed(config.LR_SCHEDULES)} (step: x --lr-decay at each of "
                   "--lr-milestones; cosine: from --lr down to 0 at the last update).",
    "lr_warmup": "Fraction of the run with a linear warm-up from --lr/W to --lr (any schedule; 0: none).",
    "lr_milestones": "Where --lr-schedule step decays the lr: increasing fractions of the run, comma-separated.",
    "lr_decay": "The factor --lr-schedule step multiplies the lr by at each milestone.",
    "momentum": "SGD momentum in [0, 1).",
    "weight_decay": "L2 weight decay.",
    "batch_size": "Mini-batch size.",
    "steps": "Number of updates (default 2000 unless --epochs is given).",
    "epochs": "Run length in passes over the training set, instead of --steps: ceil(EPOCHS x training "
              "images / --batch-size) updates; the run is named and recorded by those steps.",
    "log_every": "Record activation statistics every N steps (and at step 0 and the last step).",
    "probe": f"Where activation statistics come from: {listed(config.PROBES)} (fixed: a fixed batch of --probe-size "
             "training images in a pass of its own; train: each logged step's own training batch, read "
             "from the training pass).",
    "probe_size": "Training examples in the fixed probe batch (--probe fixed).",
    "eval_every": "Evaluate the test set every N steps (and at step 0 and the last step); each evaluation "
                  "costs about as much as ten training steps. Gradient norms are recorded on every step.",
    "checkpoint_every": "Seconds between checkpoints a killed run resumes from (0: after every step); "
                        "the bytes recorded do not depend on it.",
    "tensorboard": "Also write every recorded row as TensorBoard events into RUN/tensorboard/ (scalars, "
                   "histograms of per-unit means and sampled activations; needs pip install "
                   "tensorboard, or -e '.\\[tensorboard]' in a checkout). Not part of the run's hash; the tables are the same bytes.",
    "track_units": "Units per layer whose p15/p50/p85 percentiles are recorded.",
    "eval_batchstats": "Also measure test accuracy with batch statistics (batch-norm variants).",
    "ics_every": "Gradient-based ICS (Santurkar Def. 2.1) of every hidden layer every N steps, on the "
                 "step's batch: table grad_ics.csv (0: off).",
    "landscape_every": "Loss and gradient along the gradient (Santurkar Sec. 3.2) every N steps: table "
                       "landscape.csv (0: off).",
    "landscape_etas": "Step sizes of --landscape-every, as multiples of --lr: a comma list, or LOW:HIGH:N "
                      "for N log-spaced values (the DLN protocol: 0.01:30:12).",
    "relative_loss_every": "Relative loss L(theta - alpha g) / L(theta) (Bjorck Fig. 2) every N steps: table "
                           "relative_loss.csv (0: off; a value >= --steps: at initialization only).",
    "relative_alphas": "Step sizes alpha of --relative-loss-every: a comma list, or LOW:HIGH:N for N "
                       "log-spaced values.",
    "sharpness_every": "Largest and smallest Hessian eigenvalue (Lanczos) and sharpness x lr every N steps: "
                       "table sharpness.csv (0: off).",
    "sharpness_iters": "Hessian-vector products per sharpness measurement (warm-started from the last one).",
    "sharpness_method": f"Sharpness algorithm: {listed(config.SHARPNESS_METHODS)} (lanczos: the largest and "
                        "smallest eigenvalue; power: power iteration, the eigenvalue of largest magnitude, as "
                        "recorded before lanczos).",
    "second_view_until": "Record the second-view quantities (--ics-every, --landscape-every, "
                         "--relative-loss-every, --sharpness-every) only in this first fraction of the run.",
    "diverge_factor": "A loss above this many times the first loss ends the run as diverged.",
    "diverge_smooth": "A smoothed loss (EMA, alpha 0.1) above this many times the first loss ends the run as diverged.",
    "seed": "Random seed (init, batch order and probe choice), in [0, 2**63).",
    "device": f"Device: {listed(config.DEVICES)} (auto: cuda when available, else cpu).",
    "out": "Folder that receives one folder per run.",
}
# The help panel of every run option, by topic, in the order `ics train --help` shows them.
PANELS = {
    "Data": ("dataset", "data_dir", "split", "download", "binarize"),
    "Model": ("model", "depth", "width", "activation", "init", "init_std"),
    "Normalization": ("norm", "groups", "eps", "bn_momentum", "noise", "ghost_size", "renorm_rmax", "renorm_dmax",
                      "renorm_warmup", "renorm_rmax_at", "renorm_dmax_at", "bn_eval", "precise_samples",
                      "freeze_bn_at"),
    "Optimization": ("optimizer", "lr", "momentum", "weight_decay", "lr_scaling", "lr_base_batch", "lr_schedule",
                     "lr_warmup", "lr_milestones", "lr_decay", "steps", "epochs", "diverge_factor", "diverge_smooth",
                     "regress_loss"),
    "Batches": ("batch_size", "micro_batch", "batch_sampler"),
    "Recording cadences": ("log_every", "probe", "probe_size", "eval_every", "track_units", "eval_batchstats",
                           "tensorboard"),
    "Second view (gradients and landscape)": ("ics_every", "landscape_every", "landscape_etas",
                                              "relative_loss_every", "relative_alphas", "sharpness_every",
                                              "sharpness_iters", "sharpness_method", "second_view_until"),
    "Runtime": ("seed", "device", "out", "checkpoint_every"),
}
PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}

# Examples shown at the end of each command's help (typer epilog; blank lines keep them on their own lines).
EXAMPLES = {
    "train": ["ics train --norm batch --steps 500", "ics train --model cnn --norm group --groups 8 --lr 0.1",
              "ics train --dataset cifar10 --model resnet --depth 20 --norm batch --epochs 1"],
    "sweep": ["ics sweep --norms none,batch,layer --lrs 0.1,0.5 --seeds 0,1 --out runs/s",
              "ics sweep --config configs/default-mlp.toml --out runs/mlp --jobs 2"],
    "compare": ["ics compare runs/s", "ics compare runs/mlp runs/cnn --out results/default"],
    "plot": ["ics plot runs/s/compare --format svg"],
    "reproduce": ["ics reproduce --list", "ics reproduce ioffe2015 --quick", "ics reproduce all --seeds 10,11,12"],
    "report": ["ics report runs/s -o s.html", "ics report results -o results/report.html"],
}


def epilog(command: str) -> str | None:
    lines = EXAMPLES.get(command)
    return None if not lines else "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


BACKEND_HELP = {
    "backend": "Where the runs go: local (processes on this machine, --jobs of them) or ray (one Ray task per "
               "run, 1 CPU each, 1 GPU with --device cuda; needs pip install ray, or -e '.\\[ray]' in a checkout). The run folders "
               "are the same either way.",
    "ray_address": "With --backend ray: the Ray cluster to join, 'auto' for the one `ray start --head` started "
                   "(--out must then be a folder every node mounts). Default: start a local Ray instance.",
    "ray_retries": "With --backend ray: times a run is retried when its worker or node dies; it resumes from "
                   "its checkpoint.",
}


