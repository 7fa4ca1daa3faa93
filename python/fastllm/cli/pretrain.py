"""``fastllm pretrain``: train a GPT on a token file with the book's loop (see
:mod:`fastllm.pretrain`).

``fastllm pretrain TOKENS [--val VAL] --config tiny`` trains on the token file (or shard
manifest) written by ``fastllm tokenize``, prints the book's evaluation lines and a sample after
each epoch, draws one progress bar (loss, tokens/s, ETA) on stderr when it is a terminal,
checkpoints with ``--checkpoint`` (a rerun resumes) and saves the loss curve with ``--plot``.

>>> from fastllm.cli import build_parser
>>> args = build_parser().parse_args(["pretrain", "train.bin", "--config", "tiny"])
>>> args.tokens, args.config, args.device, args.batch_size
('train.bin', 'tiny', 'auto', 8)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from fastllm.cli._common import ProgressBar, add_quiet, fail, progress_bar

__all__ = ["add_parser", "cmd_pretrain"]

_PROG = "fastllm pretrain"
_CONFIGS = ("124M", "355M", "774M", "1558M", "small", "tiny")


def add_parser(subparsers: Any) -> None:
    """Registers ``pretrain`` on ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a GPT on a token file (the book's chapter 5 loop)",
        description="Pretrain the book's GPTModel on a token file or shard manifest written by "
        "fastllm tokenize: AdamW, train/validation loss every --eval-freq steps, a sample after "
        "each epoch, checkpoints that resume exactly, a loss-curve PNG.",
    )
    p.add_argument("tokens", metavar="TOKENS", help="token file, shard manifest or glob")
    p.add_argument(
        "--val",
        metavar="TOKENS",
        help="validation token file (default: the manifest's val shards, else the last shard, "
        "else the last 10%% of TOKENS)",
    )
    p.add_argument("--config", default="tiny", choices=_CONFIGS, help="model size (default: tiny)")
    p.add_argument("--context-length", type=int, help="override the config's context length")
    p.add_argument("--vocab-size", type=int, help="override the config's vocab_size")
    p.add_argument("--emb-dim", type=int, help="override the config's emb_dim")
    p.add_argument("--n-layers", type=int, help="override the config's n_layers")
    p.add_argument("--n-heads", type=int, help="override the config's n_heads")
    p.add_argument("--drop-rate", type=float, help="override the config's drop_rate")
    p.add_argument("--batch-size", type=int, default=8, help="windows per step (default: 8)")
    p.add_argument("--epochs", type=int, default=1, help="passes over TOKENS (default: 1)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    p.add_argument("--lr", type=float, default=4e-4, help="AdamW learning rate (default: 4e-4)")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (0.1)")
    p.add_argument("--eval-freq", type=int, default=5, help="evaluate every N steps (5)")
    p.add_argument("--eval-iter", type=int, default=5, help="batches per evaluation (5)")
    p.add_argument(
        "--start-context",
        default="Every effort moves you",
        help="the text each epoch's sample continues ('' for no sample)",
    )
    p.add_argument(
        "--encoding",
        metavar="NAME_OR_FILE",
        help="decode samples with this encoding (default: the one TOKENS was tokenized with)",
    )
    p.add_argument("--dtype", help="token dtype of a flat file without sidecar (e.g. uint16)")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N"
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's, about one per core)"
    )
    p.add_argument("--seed", type=int, default=123, help="initialization and batch order (123)")
    p.add_argument("--checkpoint", metavar="FILE", help="save the run here; a rerun resumes")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="save every N steps too")
    p.add_argument(
        "--no-resume", dest="resume", action="store_false", help="ignore an existing checkpoint"
    )
    p.add_argument("--plot", metavar="PNG", help="save the loss curve (needs matplotlib)")
    p.add_argument("--save", metavar="FILE", help="save the trained model's state_dict")
    add_quiet(p)
    p.set_defaults(func=cmd_pretrain)


def _drawer(progress: ProgressBar | None) -> Any:
    """The ``progress(step, total, tokens, loss)`` callback drawing ``progress`` (at most 5
    frames a second: the loss is read from the device only then)."""
    if progress is None:
        return None
    last = [0.0]
    first = [True]

    def draw(step: int, total: int, tokens: int, loss: Any) -> None:
        now = time.perf_counter()
        if first[0]:
            progress.count_from(step)
            first[0] = False
        if step < total and now - last[0] < 0.2:
            return
        last[0] = now
        progress.update(step, total, f" steps  loss {float(loss):.3f}  {tokens:,} tokens")

    return draw


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Runs ``fastllm pretrain`` with parsed arguments; returns the exit status."""
    try:
        import torch

        from fastllm import pretrain
    except ImportError as error:
        raise fail(_PROG, ImportError(f"{error}; pip install 'fastllm[torch]'")) from None

    say = (lambda message: None) if args.quiet else print
    overrides = {
        "emb_dim": args.emb_dim,
        "n_layers": args.n_layers,
        "n_heads": args.n_heads,
        "drop_rate": args.drop_rate,
    }
    try:
        config = pretrain.resolve_config(args.config, **overrides)
        with progress_bar(
            args.quiet, lambda stream: ProgressBar(stream, "pretrain", unit="steps")
        ) as progress:

            def log(message: str) -> None:
                if progress is not None and progress.shown:
                    progress.status("")
                    print("\r", end="", file=sys.stderr)
                say(message)

            result = pretrain.pretrain(
                args.tokens,
                val=args.val,
                config=config,
                context_length=args.context_length,
                vocab_size=args.vocab_size,
                batch_size=args.batch_size,
                num_epochs=args.epochs,
                max_steps=args.max_steps,
                lr=args.lr,
                weight_decay=args.weight_decay,
                eval_freq=args.eval_freq,
                eval_iter=args.eval_iter,
                start_context=args.start_context,
                encoding=args.encoding,
                device=args.device,
                bf16=args.bf16,
                seed=args.seed,
                dtype=args.dtype,
                checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every,
                resume=args.resume,
                plot=args.plot,
                progress=_drawer(progress),
                log=log,
                compile=args.compile,
                threads=args.threads,
            )
        if args.save:
            torch.save(result.model.state_dict(), args.save)
    except KeyboardInterrupt:
        kept = f"; the last checkpoint is {args.checkpoint}" if args.checkpoint else ""
        print(f"{_PROG}: interrupted{kept}", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, ImportError) as error:
        raise fail(_PROG, error) from None
    cfg = result.config
    params = sum(p.numel() for p in result.model.parameters())
    say(
        f"trained    {result.steps:,} steps ({result.epochs_seen:.2f} epochs) of a "
        f"{params / 1e6:,.1f}M-parameter GPT ({cfg['n_layers']} layers, {cfg['emb_dim']} dims, "
        f"context {cfg['context_length']}) on {result.device}: "
        f"{result.tokens_per_second:,.0f} tokens/s"
    )
    if result.val_losses:
        say(
            f"loss       train {result.train_losses[0]:.3f} -> {result.train_losses[-1]:.3f}, "
            f"val {result.val_losses[0]:.3f} -> {result.val_losses[-1]:.3f}"
        )
    if result.checkpoint is not None:
        say(f"checkpoint {result.checkpoint}")
    if result.plot is not None:
        say(f"plot       {result.plot}")
    if args.save:
        say(f"model      {args.save}")
    return 0
