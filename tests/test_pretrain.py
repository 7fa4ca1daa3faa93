"""Tests for ``fastllm.pretrain`` and ``fastllm pretrain``: the book's loss functions, training on
token files written by ``fastllm tokenize``, exact resume from checkpoints, the loss plot, and
the errors for bad input.

The corpus is generated: lines ``" x y x."`` of random letters, tokenized with a small BPE
vocabulary trained on it (so that a step costs milliseconds). In such a line the third letter
repeats the first: a model that only looks at the previous token cannot predict it, so
the validation loss of a working model falls below the bigram bound computed from the data.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastllm  # noqa: E402
from book_torch import book_calc_loss_batch, book_calc_loss_loader  # noqa: E402
from fastllm import pretrain as pt  # noqa: E402
from fastllm.cli import main  # noqa: E402
from fastllm.data import WindowDataset  # noqa: E402
from fastllm.nn import GPT_CONFIGS, GPTModel  # noqa: E402
from fastllm.tokenfile import tokenize_files  # noqa: E402

LETTERS = "abcdefghijklmnop"  # 16
VOCAB = 273  # the 256 bytes, every merge the corpus has, <|endoftext|>


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared machine: one torch thread is many times faster than two that
    wait for each other (the results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def generated_text(lines: int, seed: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        x, y = rng.choice(LETTERS), rng.choice(LETTERS)
        out.append(f" {x} {y} {x}.\n")
    return "".join(out)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pretrain")
    train_text = folder / "train.txt"
    val_text = folder / "val.txt"
    train_text.write_text(generated_text(6000, 0))
    val_text.write_text(generated_text(600, 1))
    enc = fastllm.train.train_bpe([train_text.read_text()], VOCAB, name="letters")
    assert enc.n_vocab == VOCAB
    enc.save(folder / "letters.tiktoken")
    tokenize_files(train_text, folder / "train.bin", encoding=enc, eot=False)
    tokenize_files(val_text, folder / "val.bin", encoding=enc, eot=False)
    return {"folder": folder, "enc": enc, "train": folder / "train.bin", "val": folder / "val.bin"}


def tiny(**extra: object) -> dict[str, object]:
    cfg = {
        **GPT_CONFIGS["tiny"],
        "vocab_size": VOCAB,
        "context_length": 32,
        "emb_dim": 64,
        "n_heads": 4,
        "n_layers": 2,
    }
    cfg.update(extra)
    return cfg


def entropies(tokens: np.ndarray) -> tuple[float, float]:
    """The empirical unigram entropy and bigram conditional entropy (nats per token): no model
    that ignores the context (resp. sees only the previous token) gets a lower mean loss."""
    t = tokens.tolist()
    uni = Counter(t)
    n = len(t)
    h1 = -sum(c / n * math.log(c / n) for c in uni.values())
    pairs = Counter(zip(t[:-1], t[1:]))
    prev = Counter(t[:-1])
    h2 = -sum(c / (n - 1) * math.log(c / prev[a]) for (a, _b), c in pairs.items())
    return h1, h2


# --------------------------------------------------------------------------------------------
# the book's functions
# --------------------------------------------------------------------------------------------


def test_calc_loss_batch_and_loader_match_the_book() -> None:
    torch.manual_seed(123)
    model = GPTModel(tiny()).eval()
    tokens = np.random.default_rng(0).integers(0, VOCAB, 2000).astype(np.uint16)
    dataset = WindowDataset(tokens, 32, 32)
    x, y = dataset[[0, 1, 2]]
    with torch.no_grad():
        torch.testing.assert_close(
            pt.calc_loss_batch(x, y, model, "cpu"), book_calc_loss_batch(x, y, model, "cpu")
        )
        loader = pt.TokenBatches(dataset, 4, shuffle=False)
        book_loader = torch.utils.data.DataLoader(dataset, batch_size=4, drop_last=True)
        for num in (None, 3, 1000):
            ours = pt.calc_loss_loader(loader, model, "cpu", num_batches=num)
            assert ours == pytest.approx(book_calc_loss_loader(book_loader, model, "cpu", num))
        # about ln(VOCAB) before training
        assert abs(pt.calc_loss_loader(loader, model, "cpu") - math.log(VOCAB)) < 0.5
    empty = pt.TokenBatches(dataset, 1000)
    assert len(empty) == 0 and math.isnan(pt.calc_loss_loader(empty, model, "cpu"))


@pytest.mark.parametrize("rows", [1, 7, 64, None])
def test_linear_cross_entropy_equals_the_logits_path(rows: int | None) -> None:
    """The chunked head + cross entropy: the loss and both gradients of
    ``F.cross_entropy(hidden @ weight.T, targets)``, for chunks that do and do not divide the
    tokens, with ignored (-100) targets and a loss that is scaled before backward."""
    torch.manual_seed(0)
    hidden = torch.randn(100, 16, requires_grad=True)
    weight = (torch.randn(VOCAB, 16) * 0.5).requires_grad_()
    targets = torch.randint(0, VOCAB, (100,))
    targets[::9] = -100
    ours = pt.linear_cross_entropy(hidden, weight, targets, chunk_rows=rows)
    (3.0 * ours).backward()
    ours_grads = hidden.grad, weight.grad
    hidden.grad = weight.grad = None
    ref = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    (3.0 * ref).backward()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_grads[0], hidden.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours_grads[1], weight.grad, rtol=1e-5, atol=1e-7)
    with torch.no_grad():  # evaluation: the loss alone
        torch.testing.assert_close(
            pt.linear_cross_entropy(hidden, weight, targets, chunk_rows=rows), ref.detach()
        )


def test_linear_cross_entropy_gradcheck_and_errors() -> None:
    torch.manual_seed(1)
    hidden = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 5, 2, -100, 1, 1, 3, 4, 0])
    assert torch.autograd.gradcheck(
        lambda h, w: pt.linear_cross_entropy(h, w, targets, chunk_rows=4), (hidden, weight)
    )
    # a loss past 87 nats (the target's probability below float32's smallest normal number)
    far = torch.tensor([[30.0, -30.0], [1.0, 2.0]]) @ torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    sure = torch.tensor([1, 0])
    torch.testing.assert_close(
        pt.linear_cross_entropy(far, torch.eye(2), sure),
        torch.nn.functional.cross_entropy(far, sure),
    )
    with pytest.raises(IndexError, match="Target 6 is out of bounds"):
        pt.linear_cross_entropy(hidden, weight, torch.tensor([0, 6, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"targets must be \(tokens,\) = \(9,\)"):
        pt.linear_cross_entropy(hidden, weight, targets[:3])
    with pytest.raises(ValueError, match="takes hidden"):
        pt.linear_cross_entropy(hidden, weight[:, :3], targets)
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer"):
        pt.linear_cross_entropy(hidden, weight, targets, chunk_rows=0)


@pytest.mark.parametrize("drop_rate", [0.0, 0.1])
def test_calc_loss_batch_training_step_matches_the_book(drop_rate: float) -> None:
    """calc_loss_batch of a GPTModel in training mode (the chunked head, dropout drawing the
    same random numbers): the book's loss and every parameter's gradient to 1e-5."""
    cfg = tiny(drop_rate=drop_rate, vocab_size=5000)
    torch.manual_seed(123)
    ours = GPTModel(cfg).train()
    torch.manual_seed(123)
    book = GPTModel(cfg).train()
    x = torch.randint(0, 5000, (4, 32))
    y = torch.randint(0, 5000, (4, 32))
    torch.manual_seed(7)
    loss = pt.calc_loss_batch(x, y, ours, "cpu")
    loss.backward()
    torch.manual_seed(7)
    book_loss = book_calc_loss_batch(x, y, book, "cpu")
    book_loss.backward()
    torch.testing.assert_close(loss, book_loss, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(ours.named_parameters(), book.parameters()):
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_calc_loss_batch_keeps_the_logits_path_when_it_must() -> None:
    """A hook on the head, a subclass with its own forward, or autocast: the model's forward
    and F.cross_entropy, as the book writes them."""
    torch.manual_seed(123)
    model = GPTModel(tiny())
    x = torch.randint(0, VOCAB, (2, 8))
    assert pt._fusable_head(model) is model
    seen: list[tuple[int, ...]] = []
    handle = model.out_head.register_forward_hook(lambda m, i, out: seen.append(out.shape))
    pt.calc_loss_batch(x, x, model, "cpu")
    handle.remove()
    assert seen == [(2, 8, VOCAB)]

    class Halved(GPTModel):
        def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
            return super().forward(in_idx) / 2

    assert pt._fusable_head(Halved(tiny())) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert pt._fusable_head(model) is None


def test_make_optimizer_is_the_books_adamw_fused() -> None:
    """make_optimizer (what pretrain builds): AdamW's update, to float tolerance, in the fused
    implementation on the CPU."""
    cfg = tiny(drop_rate=0.0)
    torch.manual_seed(123)
    ours = GPTModel(cfg)
    torch.manual_seed(123)
    book = GPTModel(cfg)
    opt = pt.make_optimizer(ours, lr=1e-3, weight_decay=0.1)
    assert opt.defaults["fused"] is True
    book_opt = torch.optim.AdamW(book.parameters(), lr=1e-3, weight_decay=0.1)
    x = torch.randint(0, VOCAB, (4, 32))
    for _ in range(5):
        for model, optimizer in ((ours, opt), (book, book_opt)):
            optimizer.zero_grad()
            book_calc_loss_batch(x, x.roll(-1, 1), model, "cpu").backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), book.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_token_batches_order_is_seeded_and_resumable() -> None:
    dataset = WindowDataset(np.arange(1000, dtype=np.uint16), 8, 8)
    loader = pt.TokenBatches(dataset, 5, seed=3)
    assert len(loader) == 24  # 124 windows, drop_last
    epoch0 = [x.clone() for x, _ in loader.iter_epoch(0)]
    epoch1 = [x.clone() for x, _ in loader.iter_epoch(1)]
    assert not torch.equal(torch.cat(epoch0), torch.cat(epoch1))
    again = [x for x, _ in pt.TokenBatches(dataset, 5, seed=3).iter_epoch(1, start=7)]
    for a, b in zip(again, epoch1[7:]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # every window at most once per epoch; targets are the inputs shifted by one
    firsts = torch.cat(epoch0)[:, 0].tolist()
    assert len(set(firsts)) == len(firsts)
    x, y = loader.batch(0, 0)
    assert x.dtype == torch.int64 and torch.equal(y[:, :-1], x[:, 1:])
    ordered = pt.TokenBatches(dataset, 5, shuffle=False, drop_last=False)
    assert len(ordered) == 25
    assert [x[0, 0].item() for x, _ in ordered][:2] == [0, 40]


def test_train_model_simple_book_semantics(corpus, capsys) -> None:
    torch.manual_seed(123)
    model = GPTModel(tiny())
    full = fastllm.data.TokenFileDataset(corpus["train"], 32, 32)
    train = WindowDataset(full.tokens[: 45 * 32 + 1], 32, 32)  # 45 windows: 5 batches
    val = fastllm.data.TokenFileDataset(corpus["val"], 32, 32)
    train_loader = pt.TokenBatches(train, 9)
    val_loader = pt.TokenBatches(val, 8, shuffle=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
    train_losses, val_losses, seen = pt.train_model_simple(
        model,
        train_loader,
        val_loader,
        optimizer,
        "cpu",
        num_epochs=4,
        eval_freq=7,
        eval_iter=2,
        start_context=" a b",
        tokenizer=corpus["enc"],
    )
    # 20 steps, evaluated after steps 0, 7 and 14 (global_step counts from 0, as the book's)
    assert len(train_losses) == len(val_losses) == len(seen) == 3
    assert seen == [(7 * i + 1) * 9 * 32 for i in range(3)]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Ep 1 (Step 000000): Train loss ")
    assert out[1].startswith(" a b")  # the sample after each epoch
    assert out[2].startswith("Ep 2 (Step 000007): ")
    assert sum(line.startswith(" a b") for line in out) == 4
    assert val_losses[-1] < val_losses[0]


# --------------------------------------------------------------------------------------------
# pretrain: training falls below what a broken model can reach; exact resume
# --------------------------------------------------------------------------------------------


def test_tiny_model_learns_the_generated_language(corpus) -> None:
    val_tokens = np.fromfile(corpus["val"], dtype=np.uint16)
    unigram, bigram = entropies(val_tokens)
    assert bigram < unigram
    result = pt.pretrain(
        corpus["train"],
        val=corpus["val"],
        config=tiny(),
        batch_size=8,
        num_epochs=3,
        max_steps=300,
        lr=2e-3,
        eval_freq=50,
        eval_iter=10,
        start_context=" a b",
        encoding=corpus["enc"],
        device="cpu",
        log=None,
    )
    assert result.steps == 300 and result.device.type == "cpu"
    assert result.val_losses[0] > unigram  # untrained: about ln(VOCAB)
    # a model blind to context cannot beat the unigram entropy; one that sees only the
    # previous token cannot beat the bigram entropy: the attention has to work
    assert result.val_losses[-1] < bigram - 0.05, (result.val_losses, unigram, bigram)
    assert result.samples and result.samples[-1].startswith(" a b")


def test_bf16_autocast_on_cpu_trains_like_float32(corpus) -> None:
    """--bf16 on the CPU: the forward pass under bfloat16 autocast (the logits path: the
    chunked head is float32-only) trains a few steps with the float32 run's losses, to
    bfloat16's precision (8 bits of mantissa: about 0.4% of a loss)."""
    common = dict(
        val=corpus["val"],
        config=tiny(),
        batch_size=8,
        max_steps=24,
        eval_freq=6,
        eval_iter=2,
        lr=1e-3,
        start_context="",
        device="cpu",
        log=None,
    )
    full = pt.pretrain(corpus["train"], **common)
    half = pt.pretrain(corpus["train"], bf16=True, **common)
    assert half.steps == full.steps == 24
    assert half.val_losses[-1] < half.val_losses[0] - 0.5  # it learns
    assert half.train_losses == pytest.approx(full.train_losses, rel=5e-3)
    assert half.val_losses == pytest.approx(full.val_losses, rel=5e-3)


@pytest.mark.parametrize("drop_rate", [0.0, 0.1])
def test_resumed_run_gives_the_same_losses(corpus, tmp_path: Path, drop_rate: float) -> None:
    common = dict(
        val=corpus["val"],
        config=tiny(drop_rate=drop_rate),
        batch_size=8,
        num_epochs=3,
        eval_freq=7,
        eval_iter=2,
        start_context="",
        device="cpu",
        log=None,
    )
    # a small training set: 29 batches an epoch, so the run crosses an epoch boundary
    small = tmp_path / "small.bin"
    np.fromfile(corpus["train"], dtype=np.uint16)[: 29 * 8 * 32 + 1].tofile(small)
    common["dtype"] = np.uint16
    whole = pt.pretrain(small, max_steps=45, **common)
    checkpoint = tmp_path / "run.pt"
    first = pt.pretrain(small, max_steps=20, checkpoint=checkpoint, checkpoint_every=10, **common)
    assert first.steps == 20 and checkpoint.exists()
    second = pt.pretrain(small, max_steps=38, checkpoint=checkpoint, **common)
    assert second.resumed_from_step == 20
    third = pt.pretrain(small, max_steps=45, checkpoint=checkpoint, **common)
    assert third.resumed_from_step == 38 and third.steps == 45
    assert third.train_losses == pytest.approx(whole.train_losses, rel=1e-6)
    assert third.val_losses == pytest.approx(whole.val_losses, rel=1e-6)
    assert third.tokens_seen == whole.tokens_seen
    for a, b in zip(third.model.parameters(), whole.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the checkpoint holds what a resume needs
    state = pt.load_checkpoint(checkpoint)
    assert state["position"]["global_step"] == 44
    assert state["position"]["epoch"] == 1 and state["position"]["step_in_epoch"] == 16
    # a run with other settings refuses it
    with pytest.raises(ValueError, match=r"was written by a different run \(lr: "):
        pt.pretrain(small, max_steps=50, checkpoint=checkpoint, lr=1e-3, **common)
    assert (
        pt.pretrain(
            small, max_steps=3, checkpoint=checkpoint, resume=False, **common
        ).resumed_from_step
        is None
    )


def test_sharded_set_with_val_split(corpus, tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(generated_text(3000, 5))
    stats = tokenize_files(
        text,
        tmp_path / "shards.bin",
        encoding=corpus["enc"],
        shard_tokens=4000,
        val_tokens=1500,
        eot=False,
    )
    assert len(stats.shards) > 2
    train, val, _meta = pt.open_token_data(stats.path, None, 32)
    assert len(train.parts) == len(stats.shards) - 1 and len(val.parts) == 1
    result = pt.pretrain(
        stats.path,
        config=tiny(),
        max_steps=6,
        eval_freq=5,
        eval_iter=1,
        start_context="",
        device="cpu",
        log=None,
    )
    assert result.steps == 6 and len(result.val_losses) == 2


def test_single_file_is_split_90_10(corpus) -> None:
    train, val, meta = pt.open_token_data(corpus["train"], None, 32)
    total = int(meta["token_count"])
    # views of the memory map, not copies
    assert isinstance(train, WindowDataset) and not train.inputs.flags.owndata
    assert len(train) == (int(total * 0.9) - 1) // 32
    assert len(val) == (total - int(total * 0.9) - 1) // 32


def test_loss_plot_png(corpus, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    result = pt.pretrain(
        corpus["train"],
        config=tiny(),
        max_steps=11,
        eval_freq=5,
        eval_iter=1,
        start_context="",
        device="cpu",
        log=None,
        plot=png,
    )
    assert result.plot == png
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 5000
    fig = pt.plot_losses([0, 1], [0, 100], [3.0, 2.0], [3.1, 2.5])
    assert fig.axes[0].get_xlabel() == "Epochs" and fig.axes[1].get_xlabel() == "Tokens seen"


# --------------------------------------------------------------------------------------------
# bad input: clear errors
# --------------------------------------------------------------------------------------------


def test_vocabulary_larger_than_the_config(corpus) -> None:
    with pytest.raises(
        ValueError,
        match=r"tokenized with 'letters' \(273 tokens\) but the "
        r"config's vocab_size is 200.*--vocab-size 273",
    ):
        pt.pretrain(corpus["train"], config=tiny(vocab_size=200), max_steps=1, log=None)


def test_gpt2_file_against_a_smaller_vocab(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Hello world. " * 4000)
    tokenize_files(tmp_path / "a.txt", tmp_path / "a.bin", encoding="cl100k_base")
    with pytest.raises(
        ValueError,
        match=r"'cl100k_base' \(100,277 tokens\).*vocab_size is "
        r"50,257.*--vocab-size 100277",
    ):
        pt.pretrain(tmp_path / "a.bin", config="tiny", max_steps=1, log=None)
    with pytest.raises(ValueError, match="the vocabulary checksums differ"):
        pt.pretrain(
            tmp_path / "a.bin",
            config="tiny",
            vocab_size=100277,
            encoding="gpt2",
            max_steps=1,
            log=None,
        )


def test_raw_file_with_ids_past_vocab_size(tmp_path: Path) -> None:
    path = tmp_path / "raw.bin"
    np.arange(2000, dtype=np.uint16).tofile(path)
    with pytest.raises(
        ValueError,
        match=r"holds token id 1,9\d\d but the config's vocab_size is "
        r"273: pass --vocab-size 19\d\d",
    ):
        pt.pretrain(path, dtype=np.uint16, config=tiny(), max_steps=1, log=None)


def test_context_length_larger_than_the_dataset(corpus, tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    np.arange(140, dtype=np.uint16).tofile(small)
    with pytest.raises(
        ValueError,
        match=r"holds 140 tokens; the training part \(126 tokens, "
        r"10% for validation\) is shorter than context_length \+ 1 = 129",
    ):
        pt.pretrain(small, dtype=np.uint16, config=tiny(context_length=128), log=None)
    with pytest.raises(
        ValueError,
        match=r"too few for one batch of 8 windows of "
        r"context_length \+ 1 = 33 tokens",
    ):
        pt.pretrain(small, val=small, dtype=np.uint16, config=tiny(), log=None)
    with pytest.raises(
        ValueError,
        match=r"small.bin holds 140 tokens, fewer than one window of context_length \+ 1 = "
        r"257 tokens needs: use a smaller --context-length",
    ):
        pt.pretrain(small, dtype=np.uint16, config=tiny(context_length=256), log=None)


def test_corrupt_checkpoint(corpus, tmp_path: Path) -> None:
    bad = tmp_path / "run.pt"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(
        ValueError,
        match=r"run.pt is not a readable fastllm checkpoint .*"
        r"delete it to start over",
    ):
        pt.pretrain(corpus["train"], config=tiny(), checkpoint=bad, max_steps=1, log=None)
    torch.save({"model": {}}, bad)
    with pytest.raises(ValueError, match="is not a fastllm pretraining checkpoint"):
        pt.load_checkpoint(bad)
    # a checkpoint cut short (a copy that did not finish)
    good = tmp_path / "good.pt"
    pt.pretrain(
        corpus["train"],
        config=tiny(),
        checkpoint=good,
        max_steps=2,
        eval_freq=5,
        eval_iter=1,
        start_context="",
        log=None,
    )
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable fastllm checkpoint"):
        pt.pretrain(corpus["train"], config=tiny(), checkpoint=good, max_steps=3, log=None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_but_absent(corpus) -> None:
    with pytest.raises(
        ValueError,
        match=r"device 'cuda' was asked for but CUDA is not "
        r"available.*--device cpu",
    ):
        pt.pretrain(corpus["train"], config=tiny(), device="cuda", log=None)
    with pytest.raises(SystemExit, match=r"fastllm pretrain: error: device 'cuda' was asked"):
        main(["pretrain", str(corpus["train"]), "--device", "cuda", "-q"])


def test_unknown_config_and_bad_device() -> None:
    with pytest.raises(ValueError, match="unknown configuration 'huge'"):
        pt.resolve_config("huge")
    with pytest.raises(ValueError, match="is not a torch device"):
        pt.resolve_device("gpu")
    assert pt.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------


def test_cli_pretrain_end_to_end(corpus, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    checkpoint = tmp_path / "run.pt"
    args = [
        "pretrain",
        str(corpus["train"]),
        "--val",
        str(corpus["val"]),
        "--config",
        "tiny",
        "--vocab-size",
        str(VOCAB),
        "--context-length",
        "32",
        "--emb-dim",
        "64",
        "--max-steps",
        "12",
        "--eval-freq",
        "5",
        "--eval-iter",
        "1",
        "--encoding",
        str(corpus["folder"] / "letters.tiktoken"),
        "--start-context",
        " a b",
        "--device",
        "cpu",
        "--plot",
        str(png),
        "--checkpoint",
        str(checkpoint),
        "--save",
        str(tmp_path / "model.pt"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Ep 1 (Step 000000): Train loss" in out and "Ep 1 (Step 000010)" in out
    assert "trained    12 steps" in out and "tokens/s" in out and "loss       train" in out
    assert png.exists() and checkpoint.exists() and (tmp_path / "model.pt").exists()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert "out_head.weight" in state
    # rerun with more steps: resumes from the checkpoint
    assert main([*args, "--max-steps", "14", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert pt.load_checkpoint(checkpoint)["position"]["global_step"] == 13
    assert main([*args, "--max-steps", "16"]) == 0
    assert "resumed    " in capsys.readouterr().out


def test_cli_errors(corpus, tmp_path: Path) -> None:
    with pytest.raises(
        SystemExit,
        match=r"fastllm pretrain: error: .*vocab_size is 100"
        r".*--vocab-size 273",
    ):
        main(["pretrain", str(corpus["train"]), "-q", "--vocab-size", "100"])
    with pytest.raises(SystemExit, match=r"fastllm pretrain: error: .*missing.bin"):
        main(["pretrain", str(tmp_path / "missing.bin"), "-q"])


def test_progress_bar_shows_steps_loss_and_tokens() -> None:
    import io

    from fastllm.cli._common import ProgressBar
    from fastllm.cli.pretrain import _drawer

    stream = io.StringIO()
    draw = _drawer(ProgressBar(stream, "pretrain", unit="steps"))
    draw(1, 10, 512, torch.tensor(9.5))
    draw(10, 10, 5120, torch.tensor(4.25))
    frame = stream.getvalue().split("\r")[-1]
    assert frame.startswith("pretrain 100% [")
    assert "10/10 steps  loss 4.250  5,120 tokens" in frame
    assert _drawer(None) is None


def test_readme_train_a_tiny_gpt_commands_parse() -> None:
    import re
    import shlex

    from fastllm.cli import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = next(
        b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "fastllm pretrain" in b
    )
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert [words[:2] for words in commands] == [["fastllm", "tokenize"], ["fastllm", "pretrain"]]
    args = build_parser().parse_args(commands[1][1:])
    assert args.tokens == build_parser().parse_args(commands[0][1:]).output
    assert args.config == "tiny" and args.plot == "loss.png"
